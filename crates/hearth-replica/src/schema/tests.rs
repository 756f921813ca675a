use proptest::prelude::*;

use super::*;

fn card_table() -> Schema {
    let seat = KindSpec::new("seat")
        .prop(PropSpec::new("name", ValueType::string(32)))
        .prop(PropSpec::new("chips", ValueType::int(0, 1_000_000)).reliable())
        .prop(
            PropSpec::new("hand", ValueType::list(Scalar::Int { min: 0, max: 51 }, 5))
                .owner_only()
                .reliable(),
        )
        .prop(PropSpec::new("deck_seed", ValueType::int(i64::MIN, i64::MAX)).server_only());
    let play = MessageSpec::to_server("play")
        .field("card", ValueType::int(0, 51))
        .rate(4, 2);
    let turn = MessageSpec::to_client("turn")
        .field("seat", ValueType::int(0, 7))
        .field("phase", ValueType::enumeration(&["bet", "draw", "show"]));
    Schema::new("cards", vec![seat], vec![play, turn]).unwrap()
}

#[test]
fn a_schema_round_trips_through_its_encoding_and_json_with_the_same_version() {
    let schema = card_table();
    let decoded = Schema::decode(&schema.encode()).unwrap();
    assert_eq!(decoded, schema);
    let json = serde_json::to_string(&schema).unwrap();
    let from_json: Schema = serde_json::from_str(&json).unwrap();
    assert_eq!(from_json, schema);
    assert_eq!(from_json.version(), schema.version());
}

#[test]
fn the_version_changes_with_any_change_that_matters_on_the_wire() {
    let base = card_table();
    let mut kinds = base.kinds().to_vec();
    kinds[0].props[1].ty = ValueType::int(0, 2_000_000);
    let wider = Schema::new("cards", kinds, base.messages().to_vec()).unwrap();
    assert_ne!(wider.version(), base.version());
    let mut kinds = base.kinds().to_vec();
    kinds[0].props[2].visibility = Visibility::Everyone;
    let shown = Schema::new("cards", kinds, base.messages().to_vec()).unwrap();
    assert_ne!(shown.version(), base.version());
    let mut messages = base.messages().to_vec();
    messages[0].rate = Some(RateLimit {
        burst: 5,
        per_second: 2,
    });
    let faster = Schema::new("cards", base.kinds().to_vec(), messages).unwrap();
    assert_ne!(faster.version(), base.version());
}

#[test]
fn a_forged_version_in_json_is_replaced_by_the_computed_one() {
    let schema = card_table();
    let mut json: serde_json::Value = serde_json::to_value(&schema).unwrap();
    json["version"] = "0000000000000000".into();
    let read: Schema = serde_json::from_value(json).unwrap();
    assert_eq!(read.version(), schema.version());
}

#[test]
fn bad_schemas_say_what_is_wrong() {
    let err = |kinds: Vec<KindSpec>, messages: Vec<MessageSpec>| {
        Schema::new("g", kinds, messages).unwrap_err().to_string()
    };
    assert!(err(vec![KindSpec::new("A")], vec![]).contains("lowercase"));
    assert!(err(vec![KindSpec::new("a"), KindSpec::new("a")], vec![]).contains("twice"));
    let inverted = KindSpec::new("a").prop(PropSpec::new("hp", ValueType::int(10, 0)));
    assert!(err(vec![inverted], vec![]).contains("above the maximum"));
    let empty_enum = KindSpec::new("a").prop(PropSpec::new("e", ValueType::enumeration(&[])));
    assert!(err(vec![empty_enum], vec![]).contains("1 to 256 variants"));
    let huge = KindSpec::new("a").prop(PropSpec::new("s", ValueType::string(MAX_STRING + 1)));
    assert!(err(vec![huge], vec![]).contains("1 to 1024 bytes"));
    let many = (0..=MAX_PROPS).fold(KindSpec::new("a"), |k, i| {
        k.prop(PropSpec::new(&format!("p{i}"), ValueType::Bool))
    });
    assert!(err(vec![many], vec![]).contains("at most 64 properties"));
    let mut unlimited = MessageSpec::to_server("m");
    unlimited.rate = None;
    assert!(err(vec![], vec![unlimited]).contains("rate limit"));
    let zero_scale = KindSpec::new("a").prop(PropSpec::new("x", ValueType::fixed(0, 0, 1)));
    assert!(err(vec![zero_scale], vec![]).contains("scale"));
}

#[test]
fn message_values_are_checked_before_encoding_and_after_decoding() {
    let schema = card_table();
    let (_, play) = schema.message("play").unwrap();
    let mut out = Vec::new();
    assert!(matches!(
        play.encode(&[Value::Int(52)], &mut out),
        Err(ValueError::Type { .. })
    ));
    assert!(matches!(
        play.encode(&[], &mut out),
        Err(ValueError::Count { .. })
    ));
    assert!(out.is_empty(), "nothing written for a refused message");
    play.encode(&[Value::Int(51)], &mut out).unwrap();
    assert_eq!(play.decode(&out).unwrap(), vec![Value::Int(51)]);
    // 52 on the wire: out of range.
    assert_eq!(play.decode(&[52]), Err(DecodeError::OutOfRange("value")));
    assert_eq!(
        play.decode(&[1, 2]),
        Err(DecodeError::OutOfRange("message length"))
    );
    assert!(play.decode(&[]).is_err());
}

#[test]
fn scalars_travel_as_their_offset_from_the_minimum() {
    let ty = ValueType::int(-100, 100);
    let mut out = Vec::new();
    ty.encode(&Value::Int(-100), &mut out);
    assert_eq!(out, [0]);
    assert_eq!(ty.encoded_len(&Value::Int(100)), 2);
    let full = ValueType::int(i64::MIN, i64::MAX);
    for v in [i64::MIN, -1, 0, i64::MAX] {
        let mut out = Vec::new();
        full.encode(&Value::Int(v), &mut out);
        assert_eq!(out.len(), full.encoded_len(&Value::Int(v)));
        assert!(out.len() <= full.max_len());
        assert_eq!(full.decode(&mut Reader::new(&out)).unwrap(), Value::Int(v));
    }
}

fn scalar_strategy() -> impl Strategy<Value = Scalar> {
    prop_oneof![
        Just(Scalar::Bool),
        (any::<i64>(), any::<i64>()).prop_map(|(a, b)| Scalar::Int {
            min: a.min(b),
            max: a.max(b)
        }),
        (1u32.., any::<i64>(), any::<i64>()).prop_map(|(scale, a, b)| Scalar::Fixed {
            scale,
            min: a.min(b),
            max: a.max(b)
        }),
        (1usize..5).prop_map(|n| Scalar::Enum {
            variants: (0..n).map(|i| format!("v{i}")).collect()
        }),
    ]
}

fn type_strategy() -> impl Strategy<Value = ValueType> {
    prop_oneof![
        scalar_strategy().prop_map(|s| match s {
            Scalar::Bool => ValueType::Bool,
            Scalar::Int { min, max } => ValueType::Int { min, max },
            Scalar::Fixed { scale, min, max } => ValueType::Fixed { scale, min, max },
            Scalar::Enum { variants } => ValueType::Enum { variants },
        }),
        (1u16..=64).prop_map(|max_bytes| ValueType::Str { max_bytes }),
        (scalar_strategy(), 1u16..=8).prop_map(|(item, max_len)| ValueType::List { item, max_len }),
    ]
}

fn scalar_value(scalar: &Scalar, pick: u64) -> i64 {
    let (min, max) = scalar_bounds(scalar);
    let span = (i128::from(max) - i128::from(min)) as u128 + 1;
    (i128::from(min) + (u128::from(pick) % span) as i128) as i64
}

fn value_for(ty: &ValueType, picks: &[u64], text: &str) -> Value {
    match ty {
        ValueType::Bool => Value::Bool(picks[0] % 2 == 1),
        ValueType::Str { max_bytes } => {
            let mut end = text.len().min(usize::from(*max_bytes));
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            Value::Str(Arc::from(&text[..end]))
        }
        ValueType::List { item, max_len } => {
            let len = (picks[0] as usize) % (usize::from(*max_len) + 1);
            Value::List(
                picks[1..]
                    .iter()
                    .take(len)
                    .map(|&p| scalar_value(item, p))
                    .collect(),
            )
        }
        other => Value::Int(scalar_value(&other.scalar().unwrap(), picks[0])),
    }
}

proptest! {
    #[test]
    fn every_admitted_value_round_trips_within_its_length_bounds(
        ty in type_strategy(),
        picks in proptest::collection::vec(any::<u64>(), 9),
        text in ".{0,40}",
    ) {
        let value = value_for(&ty, &picks, &text);
        prop_assert!(ty.admits(&value));
        let mut out = Vec::new();
        ty.encode(&value, &mut out);
        prop_assert_eq!(out.len(), ty.encoded_len(&value));
        prop_assert!(out.len() <= ty.max_len());
        let mut r = Reader::new(&out);
        prop_assert_eq!(ty.decode(&mut r).unwrap(), value);
        prop_assert!(r.finish().is_ok());
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_schema_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Schema::decode(&bytes);
    }

    #[test]
    fn arbitrary_bytes_decode_only_to_admitted_values(
        ty in type_strategy(),
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        if let Ok(value) = ty.decode(&mut Reader::new(&bytes)) {
            prop_assert!(ty.admits(&value));
        }
    }
}

#[test]
fn a_misspelt_field_in_json_is_an_error() {
    let mut json: serde_json::Value = serde_json::to_value(card_table()).unwrap();
    json["kinds"][0]["props"][0]["visibilty"] = "owner".into();
    let error = serde_json::from_value::<Schema>(json)
        .unwrap_err()
        .to_string();
    assert!(error.contains("visibilty"), "{error}");
}

#[test]
fn a_moving_kind_starts_with_its_position_and_round_trips_with_its_movement() {
    let runner = KindSpec::moving("runner", Movement::new(6).through_walls())
        .prop(PropSpec::new("score", ValueType::int(0, 100)).reliable());
    assert_eq!(runner.prop_index(POS_X), Some(0));
    assert_eq!(runner.prop_index(POS_Y), Some(1));
    let schema = Schema::new("tag", vec![runner.clone()], vec![]).unwrap();
    let decoded = Schema::decode(&schema.encode()).unwrap();
    assert_eq!(decoded, schema);
    assert_eq!(
        decoded.kinds()[0].movement,
        Some(Movement {
            speed: 6,
            collides: false
        })
    );
    let json: Schema = serde_json::from_str(&serde_json::to_string(&schema).unwrap()).unwrap();
    assert_eq!(json, schema);
    // The same kind without movement is another schema.
    let still = KindSpec {
        movement: None,
        ..runner.clone()
    };
    let other = Schema::new("tag", vec![still], vec![]).unwrap();
    assert_ne!(other.version(), schema.version());

    // A moving kind whose position is missing, moved or retyped is refused
    // with advice, and so is a speed of zero or beyond the limit.
    let mut no_position = KindSpec::new("runner");
    no_position.movement = Some(Movement::new(6));
    let mut swapped = runner.clone();
    swapped.props.swap(0, 1);
    let mut retyped = runner.clone();
    retyped.props[0].ty = ValueType::int(0, 100);
    let mut hidden = runner.clone();
    hidden.props[1] = hidden.props[1].clone().owner_only();
    for bad in [no_position, swapped, retyped, hidden] {
        let error = Schema::new("tag", vec![bad], vec![]).unwrap_err();
        assert!(error.to_string().contains("KindSpec::moving"), "{error}");
    }
    for speed in [0, MAX_SPEED + 1] {
        let mut kind = runner.clone();
        kind.movement = Some(Movement::new(speed));
        let error = Schema::new("tag", vec![kind], vec![]).unwrap_err();
        assert!(error.to_string().contains("speed"), "{error}");
    }
}
