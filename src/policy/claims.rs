//! The `claims` criterion: reading a (possibly nested) claim from a verified identity and
//! comparing it with configured [`ClaimValue`]s. Comparison is by JSON type with no coercion:
//! `"1"` is not `1` and `"true"` is not `true`, so a provider cannot satisfy a rule by sending
//! a value of a different type than the one configured.

use serde_json::{Map, Value};

use super::rule::ClaimValue;

/// Whether every `(name, values)` pair holds for `claims`. An empty list never holds: config
/// rejects it, and a vacuous "all of nothing" must not grant access.
pub(super) fn all_claims_hold(
    required: &[(String, Vec<ClaimValue>)],
    claims: &Map<String, Value>,
) -> bool {
    !required.is_empty()
        && required.iter().all(|(name, values)| {
            lookup(claims, name).is_some_and(|claim| claim_matches(claim, values))
        })
}

/// Finds a claim by name. The literal key wins when present, because real claim names contain
/// dots and colons (`cognito:groups`, `https://example.com/roles`); only when no such key
/// exists is a dotted name read as a path through nested objects (`realm_access.roles`).
fn lookup<'c>(claims: &'c Map<String, Value>, name: &str) -> Option<&'c Value> {
    if let Some(value) = claims.get(name) {
        return Some(value);
    }
    if !name.contains('.') {
        return None;
    }
    let mut segments = name.split('.');
    let mut current = claims.get(segments.next()?)?;
    for segment in segments {
        current = current.as_object()?.get(segment)?;
    }
    Some(current)
}

/// A scalar claim matches when it equals a value; an array claim when any element does.
/// Arrays are searched one level deep only.
fn claim_matches(claim: &Value, values: &[ClaimValue]) -> bool {
    match claim {
        Value::Array(items) => items.iter().any(|item| scalar_matches(item, values)),
        scalar => scalar_matches(scalar, values),
    }
}

fn scalar_matches(claim: &Value, values: &[ClaimValue]) -> bool {
    values.iter().any(|wanted| match (wanted, claim) {
        (ClaimValue::String(w), Value::String(c)) => w == c,
        (ClaimValue::Integer(w), Value::Number(c)) => c.as_i64() == Some(*w),
        (ClaimValue::Bool(w), Value::Bool(c)) => w == c,
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn s(v: &str) -> ClaimValue {
        ClaimValue::String(v.to_owned())
    }

    fn holds(name: &str, values: Vec<ClaimValue>, claims: &Map<String, Value>) -> bool {
        all_claims_hold(&[(name.to_owned(), values)], claims)
    }

    #[test]
    fn string_claim_equals_one_of_the_values() {
        let c = claims(json!({"department": "eng"}));
        assert!(holds("department", vec![s("ops"), s("eng")], &c));
        assert!(!holds("department", vec![s("ops")], &c));
        assert!(!holds("department", vec![s("ENG")], &c), "case-sensitive");
    }

    #[test]
    fn missing_claim_never_matches() {
        let c = claims(json!({"department": "eng"}));
        assert!(!holds("team", vec![s("eng")], &c));
        assert!(!holds("department.sub", vec![s("eng")], &c));
    }

    #[test]
    fn integer_and_bool_claims_match_their_own_type_only() {
        let c =
            claims(json!({"level": 3, "admin": true, "code": "3", "flag": "true", "ratio": 3.0}));
        assert!(holds("level", vec![ClaimValue::Integer(3)], &c));
        assert!(!holds("level", vec![ClaimValue::Integer(4)], &c));
        assert!(!holds("level", vec![s("3")], &c));
        assert!(!holds("code", vec![ClaimValue::Integer(3)], &c));
        assert!(
            !holds("ratio", vec![ClaimValue::Integer(3)], &c),
            "floats are not integers"
        );
        assert!(holds("admin", vec![ClaimValue::Bool(true)], &c));
        assert!(!holds("admin", vec![ClaimValue::Bool(false)], &c));
        assert!(!holds("admin", vec![s("true")], &c));
        assert!(!holds("flag", vec![ClaimValue::Bool(true)], &c));
    }

    #[test]
    fn null_and_object_claims_never_match() {
        let c = claims(json!({"n": null, "o": {"a": "x"}}));
        assert!(!holds("n", vec![s("null")], &c));
        assert!(!holds("o", vec![s("x")], &c));
    }

    #[test]
    fn array_claim_matches_any_element() {
        let c = claims(json!({"roles": ["viewer", "editor", 7, false]}));
        assert!(holds("roles", vec![s("editor")], &c));
        assert!(holds("roles", vec![s("admin"), s("viewer")], &c));
        assert!(holds("roles", vec![ClaimValue::Integer(7)], &c));
        assert!(holds("roles", vec![ClaimValue::Bool(false)], &c));
        assert!(!holds("roles", vec![s("admin")], &c));
        assert!(!holds("roles", vec![s("7")], &c));
    }

    #[test]
    fn nested_arrays_are_not_flattened() {
        let c = claims(json!({"roles": [["admin"]]}));
        assert!(!holds("roles", vec![s("admin")], &c));
    }

    #[test]
    fn dotted_name_reads_nested_objects() {
        let c = claims(json!({
            "realm_access": {"roles": ["admin", "user"]},
            "org": {"unit": {"name": "sales"}}
        }));
        assert!(holds("realm_access.roles", vec![s("admin")], &c));
        assert!(!holds("realm_access.roles", vec![s("root")], &c));
        assert!(holds("org.unit.name", vec![s("sales")], &c));
        assert!(!holds("org.unit.missing", vec![s("sales")], &c));
        assert!(
            !holds("realm_access.roles.0", vec![s("admin")], &c),
            "arrays are not indexed"
        );
    }

    #[test]
    fn literal_keys_with_dots_and_colons_win() {
        let c = claims(json!({
            "cognito:groups": ["admins"],
            "https://example.com/roles": "editor",
            "a.b": "literal",
            "a": {"b": "nested"}
        }));
        assert!(holds("cognito:groups", vec![s("admins")], &c));
        assert!(holds("https://example.com/roles", vec![s("editor")], &c));
        assert!(holds("a.b", vec![s("literal")], &c));
        assert!(
            !holds("a.b", vec![s("nested")], &c),
            "the literal key shadows the path"
        );
    }

    #[test]
    fn every_pair_must_hold() {
        let c = claims(json!({"dept": "eng", "level": 3}));
        let both = vec![
            ("dept".to_owned(), vec![s("eng")]),
            ("level".to_owned(), vec![ClaimValue::Integer(3)]),
        ];
        assert!(all_claims_hold(&both, &c));
        let one_fails = vec![
            ("dept".to_owned(), vec![s("eng")]),
            ("level".to_owned(), vec![ClaimValue::Integer(4)]),
        ];
        assert!(!all_claims_hold(&one_fails, &c));
    }

    #[test]
    fn empty_requirements_never_hold() {
        let c = claims(json!({"dept": "eng"}));
        assert!(!all_claims_hold(&[], &c));
        assert!(!holds("dept", vec![], &c));
    }
}
