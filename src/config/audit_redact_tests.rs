use super::super::super::load_str;
use super::*;

fn redact_section(body: &str) -> Result<RedactConfig, String> {
    let text = format!(
        "version = 1\n[audit]\n[audit.redact]\n{body}\n[[routes]]\nid = \"r\"\n\
         upstream = \"http://127.0.0.1:1\"\n[routes.policy]\nallow = [{{ public = true }}]\n"
    );
    load_str(&text, Vec::new())
        .map_err(|e| e.to_string())
        .map(|c| c.audit.unwrap().redact)
}

fn errors(body: &str) -> String {
    redact_section(body).unwrap_err()
}

#[test]
fn list_form_means_drop() {
    let r = redact_section(
        "headers = [\"X-Internal-Ticket\", \"authorization\"]\nquery = [\"SSN\", \"%70hone\", \"ids[]\"]",
    )
    .unwrap();
    assert_eq!(
        r.headers,
        BTreeMap::from([
            ("authorization".to_owned(), RedactAction::Drop),
            ("x-internal-ticket".to_owned(), RedactAction::Drop),
        ])
    );
    assert_eq!(
        r.query,
        BTreeMap::from([
            ("ids".to_owned(), RedactAction::Drop),
            ("phone".to_owned(), RedactAction::Drop),
            ("ssn".to_owned(), RedactAction::Drop),
        ])
    );
}

#[test]
fn table_form_takes_an_action_per_name() {
    let r = redact_section(
        "headers = { \"X-Tenant\" = \"keep\", \"user-agent\" = \"hmac\", x-ticket = \"mask\", \
         authorization = \"drop\" }\n\
         query = { User = \"mask\", page = \"keep\", email = \"hmac\", ssn = \"drop\" }",
    )
    .unwrap();
    assert_eq!(r.headers["x-tenant"], RedactAction::Keep);
    assert_eq!(r.headers["user-agent"], RedactAction::Hmac);
    assert_eq!(r.headers["x-ticket"], RedactAction::Mask);
    assert_eq!(r.headers["authorization"], RedactAction::Drop);
    assert_eq!(r.query["user"], RedactAction::Mask);
    assert_eq!(r.query["page"], RedactAction::Keep);
    assert_eq!(r.query["email"], RedactAction::Hmac);
    assert_eq!(r.query["ssn"], RedactAction::Drop);
}

#[test]
fn design_example_still_loads() {
    let r = redact_section(
        "headers = [\"authorization\", \"cookie\", \"x-api-key\"]\n\
         query = [\"token\", \"code\", \"access_token\", \"password\", \"secret\"]\n\
         claims = { email = \"hmac\" }",
    )
    .unwrap();
    assert_eq!(r.headers.len(), 3);
    assert_eq!(r.query.len(), 5);
    assert_eq!(r.claims["email"], RedactAction::Hmac);
}

#[test]
fn keeping_a_never_stored_name_is_rejected_with_its_key() {
    let errs = errors(
        "headers = { authorization = \"keep\", Cookie = \"hmac\", x-api-key = \"mask\" }\n\
         query = { code = \"keep\", \"%61ccess_token\" = \"hmac\", db_password = \"mask\", \
         \"token[]\" = \"keep\" }",
    );
    for key in [
        "audit.redact.headers.authorization",
        "audit.redact.headers.Cookie",
        "audit.redact.headers.x-api-key",
        "audit.redact.query.code",
        "audit.redact.query.%61ccess_token",
        "audit.redact.query.db_password",
        "audit.redact.query.token[]",
    ] {
        assert!(
            errs.contains(&format!("{key}: ")),
            "{key} missing in {errs}"
        );
    }
    assert!(errs.contains("never recorded"), "{errs}");
}

#[test]
fn bad_actions_names_and_types_name_their_keys() {
    let errs = errors(
        "headers = { \"bad header\" = \"keep\", x-a = \"hide\" }\n\
         query = { \"\" = \"keep\", \"%20\" = \"drop\", q = \"KEEP\" }",
    );
    assert!(
        errs.contains("audit.redact.headers.bad header: `bad header` is not a header name"),
        "{errs}"
    );
    assert!(
        errs.contains("audit.redact.headers.x-a: `hide`: expected one of"),
        "{errs}"
    );
    assert!(
        errs.contains("audit.redact.query.: must not be empty"),
        "{errs}"
    );
    assert!(
        errs.contains("audit.redact.query.%20: must not be empty"),
        "{errs}"
    );
    assert!(errs.contains("audit.redact.query.q: `KEEP`"), "{errs}");
    let errs = errors("headers = \"x-a\"");
    assert!(errs.contains("array of names or a table"), "{errs}");
    let errs = errors("query = [\"ok\", \"\"]");
    assert!(
        errs.contains("audit.redact.query[1]: must not be empty"),
        "{errs}"
    );
}

#[test]
fn one_name_written_two_ways_must_agree() {
    let errs = errors("query = { User = \"mask\", \"%75ser\" = \"keep\" }");
    assert!(errs.contains("same name as an earlier entry"), "{errs}");
    let errs = errors("headers = { X-Tenant = \"hmac\", x-tenant = \"keep\" }");
    assert!(errs.contains("same name as an earlier entry"), "{errs}");
    let same = redact_section("query = { User = \"mask\", user = \"mask\" }").unwrap();
    assert_eq!(same.query.len(), 1);
}

#[test]
fn never_store_list_is_only_drop_in_either_form() {
    let ok = redact_section("headers = [\"Set-Cookie\"]\nquery = [\"X-Amz-Signature\"]");
    assert!(ok.is_ok(), "{ok:?}");
    let ok = redact_section("headers = { Set-Cookie = \"drop\" }\nquery = { sig = \"drop\" }");
    assert!(ok.is_ok(), "{ok:?}");
}
