//! The words both languages' doc comments use for a schema's types and
//! properties.

use hearth_replica::schema::{Delivery, PropSpec, ValueType, Visibility};

use crate::shape::{shape, ScalarShape, Shape};

/// A property's doc line: its name in the schema, its type, who sees it
/// and how its changes travel.
pub(crate) fn prop(prop: &PropSpec) -> String {
    let seen = match prop.visibility {
        Visibility::Owner => " Owner only: empty (its type's default) unless you own the actor.",
        Visibility::Everyone | Visibility::Server => "",
    };
    let delivery = match prop.delivery {
        Delivery::Frame => "with the frame",
        Delivery::Reliable => "reliably",
    };
    format!(
        "`{}`: {}; changes arrive {delivery}.{seen}",
        prop.name,
        value_type(&prop.ty)
    )
}

/// A field's doc line.
pub(crate) fn field(name: &str, ty: &ValueType) -> String {
    format!("`{name}`: {}.", value_type(ty))
}

fn value_type(ty: &ValueType) -> String {
    match shape(ty) {
        Shape::One(one) => scalar(one),
        Shape::List { item, max_len } => format!("at most {max_len} items, each {}", scalar(item)),
        Shape::Text { max_bytes } => format!("text of at most {max_bytes} bytes"),
    }
}

fn scalar(scalar: ScalarShape<'_>) -> String {
    match scalar {
        ScalarShape::Bool => "true or false".to_owned(),
        ScalarShape::Int { min, max } => format!("an integer in {min}..={max}"),
        ScalarShape::Fixed { scale, min, max } => {
            format!("a fixed-point number in steps of 1/{scale} (raw {min}..={max})")
        }
        ScalarShape::Enum(variants) => format!("one of {}", variants.join(", ")),
    }
}
