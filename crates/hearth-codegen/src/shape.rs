//! A schema's value types as generated code sees them: a scalar alone, a
//! scalar in a list, or text.

use hearth_replica::schema::{Scalar, Schema, ValueType, Visibility};

#[derive(Clone, Copy)]
pub(crate) enum ScalarShape<'a> {
    Bool,
    Int { min: i64, max: i64 },
    Fixed { scale: u32, min: i64, max: i64 },
    Enum(&'a [String]),
}

#[derive(Clone, Copy)]
pub(crate) enum Shape<'a> {
    One(ScalarShape<'a>),
    /// At most `max_len` items.
    List {
        item: ScalarShape<'a>,
        max_len: u16,
    },
    /// At most `max_bytes` bytes of UTF-8.
    Text {
        max_bytes: u16,
    },
}

pub(crate) fn shape(ty: &ValueType) -> Shape<'_> {
    match ty {
        ValueType::Bool => Shape::One(ScalarShape::Bool),
        ValueType::Int { min, max } => Shape::One(ScalarShape::Int {
            min: *min,
            max: *max,
        }),
        ValueType::Fixed { scale, min, max } => Shape::One(ScalarShape::Fixed {
            scale: *scale,
            min: *min,
            max: *max,
        }),
        ValueType::Enum { variants } => Shape::One(ScalarShape::Enum(variants)),
        ValueType::Str { max_bytes } => Shape::Text {
            max_bytes: *max_bytes,
        },
        ValueType::List { item, max_len } => Shape::List {
            item: scalar_shape(item),
            max_len: *max_len,
        },
    }
}

fn scalar_shape(scalar: &Scalar) -> ScalarShape<'_> {
    match scalar {
        Scalar::Bool => ScalarShape::Bool,
        Scalar::Int { min, max } => ScalarShape::Int {
            min: *min,
            max: *max,
        },
        Scalar::Fixed { scale, min, max } => ScalarShape::Fixed {
            scale: *scale,
            min: *min,
            max: *max,
        },
        Scalar::Enum { variants } => ScalarShape::Enum(variants),
    }
}

/// Where the schema declares a value: a kind's property or a message's
/// field, by indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Site {
    Prop(usize, usize),
    Field(usize, usize),
}

impl Site {
    /// The kind's or message's name, and the property's or field's.
    pub(crate) fn names(self, schema: &Schema) -> (&str, &str) {
        match self {
            Site::Prop(k, p) => {
                let kind = &schema.kinds()[k];
                (&kind.name, &kind.props[p].name)
            }
            Site::Field(m, f) => {
                let message = &schema.messages()[m];
                (&message.name, &message.fields[f].name)
            }
        }
    }

    pub(crate) fn ty(self, schema: &Schema) -> &ValueType {
        match self {
            Site::Prop(k, p) => &schema.kinds()[k].props[p].ty,
            Site::Field(m, f) => &schema.messages()[m].fields[f].ty,
        }
    }
}

/// The enums a client sees, in the schema's order: its kinds' properties
/// (server-only ones are never generated), then its messages' fields.
pub(crate) fn enum_sites(schema: &Schema) -> Vec<Site> {
    let props = schema.kinds().iter().enumerate().flat_map(|(k, kind)| {
        kind.props
            .iter()
            .enumerate()
            .filter(|(_, prop)| prop.visibility != Visibility::Server)
            .map(move |(p, _)| Site::Prop(k, p))
    });
    let fields = schema
        .messages()
        .iter()
        .enumerate()
        .flat_map(|(m, message)| (0..message.fields.len()).map(move |f| Site::Field(m, f)));
    props
        .chain(fields)
        .filter(|site| enum_variants(site.ty(schema)).is_some())
        .collect()
}

/// The variants of an enum, alone or as a list's items.
pub(crate) fn enum_variants(ty: &ValueType) -> Option<&[String]> {
    match shape(ty) {
        Shape::One(ScalarShape::Enum(variants))
        | Shape::List {
            item: ScalarShape::Enum(variants),
            ..
        } => Some(variants),
        _ => None,
    }
}

/// Whether a value is fixed-point, alone or as a list's items: those get a
/// second reading, raw.
pub(crate) fn has_fixed(ty: &ValueType) -> bool {
    matches!(
        shape(ty),
        Shape::One(ScalarShape::Fixed { .. })
            | Shape::List {
                item: ScalarShape::Fixed { .. },
                ..
            }
    )
}
