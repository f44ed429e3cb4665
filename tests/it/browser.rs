//! A stand-in for a browser in login tests: a reqwest client that follows no redirects on its
//! own, plus a hand-written cookie jar (reqwest's `cookies` feature is not enabled) and a tiny
//! HTML form reader. Cookies are scoped like a browser scopes them: by host and path, NOT by
//! port, so the proxy's and the provider's cookies (both on 127.0.0.1) live in one jar exactly
//! as they would in Chromium. It understands only what the tests' pages need; it is no parser
//! of arbitrary HTML.

// Helpers for the login tests of other modules too; not every one is used by every branch.
#![allow(dead_code)]

use std::sync::Mutex;

use reqwest::Url;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

#[derive(Debug, Clone, PartialEq, Eq)]
struct StoredCookie {
    host: String,
    path: String,
    name: String,
    value: String,
}

/// An HTTP client with a cookie jar; every method takes `&self`.
pub struct Browser {
    client: reqwest::Client,
    jar: Mutex<Vec<StoredCookie>>,
}

/// A form found in a page: where it goes and the fields a browser would submit.
#[derive(Debug, Clone)]
pub struct HtmlForm {
    pub action: Url,
    pub method: String,
    pub fields: Vec<(String, String)>,
}

impl HtmlForm {
    /// Sets (or adds) a field's value.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.fields.iter_mut().find(|(n, _)| n == name) {
            Some(field) => field.1 = value.to_owned(),
            None => self.fields.push((name.to_owned(), value.to_owned())),
        }
    }
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            client: crate::support::client(),
            jar: Mutex::new(Vec::new()),
        }
    }

    /// GET `url` with the jar's cookies; stores the answer's cookies.
    pub async fn get(&self, url: &str) -> reqwest::Response {
        let url = Url::parse(url).unwrap_or_else(|e| panic!("bad url {url}: {e}"));
        self.send(self.client.get(url.clone()), &url).await
    }

    /// POST an urlencoded form to `url`.
    pub async fn post_form(&self, url: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let url = Url::parse(url).unwrap_or_else(|e| panic!("bad url {url}: {e}"));
        self.send(self.client.post(url.clone()).form(fields), &url)
            .await
    }

    /// Submits a form as a browser would (GET forms put the fields in the query).
    pub async fn submit(&self, form: &HtmlForm) -> reqwest::Response {
        if form.method.eq_ignore_ascii_case("get") {
            let mut url = form.action.clone();
            url.query_pairs_mut().extend_pairs(form.fields.iter());
            return self.send(self.client.get(url.clone()), &url).await;
        }
        self.send(
            self.client.post(form.action.clone()).form(&form.fields),
            &form.action,
        )
        .await
    }

    /// Sends any request built on this browser's client (see [`Browser::http`]) with cookies.
    pub async fn send(&self, request: reqwest::RequestBuilder, url: &Url) -> reqwest::Response {
        let request = match self.cookie_header(url) {
            Some(cookies) => request.header(COOKIE, cookies),
            None => request,
        };
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("request to {url} failed: {e}"));
        for value in response.headers().get_all(SET_COOKIE) {
            if let Ok(text) = value.to_str() {
                self.store(url, text);
            }
        }
        response
    }

    /// The underlying client (no redirects, no proxy), to build requests for [`Browser::send`].
    pub fn http(&self) -> &reqwest::Client {
        &self.client
    }

    /// GETs `url` and follows redirects (at most 20) until an answer that is not one; returns
    /// the last URL requested and its answer.
    pub async fn follow(&self, url: &str) -> (Url, reqwest::Response) {
        let mut current = Url::parse(url).unwrap_or_else(|e| panic!("bad url {url}: {e}"));
        for _ in 0..20 {
            let response = self.get(current.as_str()).await;
            match location(&response, &current) {
                Some(next) if response.status().is_redirection() => current = next,
                _ => return (current, response),
            }
        }
        panic!("more than 20 redirects from {url}");
    }

    /// The `Cookie` header this browser would send to `url`.
    pub fn cookie_header(&self, url: &Url) -> Option<String> {
        let host = url.host_str()?;
        let path = url.path();
        let jar = self.jar.lock().unwrap();
        let pairs: Vec<String> = jar
            .iter()
            .filter(|c| c.host == host && path_matches(&c.path, path))
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    /// The value of a cookie by name (any host, any path).
    pub fn cookie(&self, name: &str) -> Option<String> {
        let jar = self.jar.lock().unwrap();
        jar.iter().find(|c| c.name == name).map(|c| c.value.clone())
    }

    /// Puts a cookie in the jar by hand (e.g. a fixation attempt).
    pub fn set_cookie(&self, url: &str, name: &str, value: &str) {
        let url = Url::parse(url).unwrap();
        self.store(&url, &format!("{name}={value}; Path=/"));
    }

    /// Forgets every cookie.
    pub fn clear_cookies(&self) {
        self.jar.lock().unwrap().clear();
    }

    fn store(&self, url: &Url, set_cookie: &str) {
        let Some(host) = url.host_str() else { return };
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|pair| pair.split_once('=')) else {
            return;
        };
        let mut path = default_path(url.path());
        let mut expired = false;
        for attribute in parts {
            let (key, val) = attribute.split_once('=').unwrap_or((attribute, ""));
            match key.trim().to_ascii_lowercase().as_str() {
                "path" if val.trim().starts_with('/') => path = val.trim().to_owned(),
                "max-age" => expired |= val.trim().parse::<i64>().is_ok_and(|age| age <= 0),
                "expires" => expired |= expires_in_past(val.trim()),
                _ => {}
            }
        }
        let cookie = StoredCookie {
            host: host.to_owned(),
            path,
            name: name.trim().to_owned(),
            value: value.trim().to_owned(),
        };
        let mut jar = self.jar.lock().unwrap();
        jar.retain(|c| !(c.host == cookie.host && c.path == cookie.path && c.name == cookie.name));
        if !expired {
            jar.push(cookie);
        }
    }
}

/// The absolute target of a response's `Location`, resolved against the request URL.
pub fn location(response: &reqwest::Response, base: &Url) -> Option<Url> {
    let value = response.headers().get(LOCATION)?.to_str().ok()?;
    base.join(value).ok()
}

/// The first `<form>` in `html` with its `<input>` and named `<button>` fields (hidden inputs
/// keep their values; the first named button is the one "clicked").
pub fn parse_form(html: &str, base: &Url) -> Option<HtmlForm> {
    let start = html.find("<form")?;
    let end = html[start..]
        .find("</form>")
        .map_or(html.len(), |e| start + e);
    let form = &html[start..end];
    let open = &form[..form.find('>')?];
    let action = attribute(open, "action").unwrap_or_default();
    let method = attribute(open, "method").unwrap_or_else(|| "get".to_owned());
    let mut fields = Vec::new();
    let mut button_taken = false;
    for (index, _) in form.match_indices('<') {
        let tag = &form[index..];
        let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
        let is_input = tag.starts_with("<input");
        let is_button = tag.starts_with("<button");
        if !is_input && !is_button {
            continue;
        }
        let Some(name) = attribute(tag, "name") else {
            continue;
        };
        if is_button {
            if button_taken {
                continue;
            }
            button_taken = true;
        }
        fields.push((name, attribute(tag, "value").unwrap_or_default()));
    }
    Some(HtmlForm {
        action: base.join(&html_unescape(&action)).ok()?,
        method,
        fields,
    })
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let len = tag[start..].find('"')?;
    Some(html_unescape(&tag[start..start + len]))
}

fn html_unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn path_matches(cookie_path: &str, request_path: &str) -> bool {
    request_path == cookie_path
        || (request_path.starts_with(cookie_path)
            && (cookie_path.ends_with('/')
                || request_path.as_bytes().get(cookie_path.len()) == Some(&b'/')))
}

/// RFC 6265 5.1.4: the request path up to (not including) its last `/`, or `/`.
fn default_path(request_path: &str) -> String {
    match request_path.rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(i) => request_path[..i].to_owned(),
    }
}

fn expires_in_past(value: &str) -> bool {
    jiff::fmt::rfc2822::parse(value)
        .map(|when| when.timestamp() <= jiff::Timestamp::now())
        .unwrap_or(false)
}

#[test]
fn jar_scopes_by_host_and_path_and_forgets_expired_cookies() {
    let browser = Browser::new();
    let url = Url::parse("http://127.0.0.1:1/interaction/abc").unwrap();
    browser.store(&url, "_interaction=1; path=/interaction/abc; httponly");
    browser.store(&url, "_session=s; path=/; samesite=lax");
    browser.store(&url, "dir=d");
    let other_port = Url::parse("http://127.0.0.1:2/interaction/abc/login").unwrap();
    assert_eq!(
        browser.cookie_header(&other_port).unwrap(),
        "_interaction=1; _session=s; dir=d"
    );
    let root = Url::parse("http://127.0.0.1:1/auth").unwrap();
    assert_eq!(browser.cookie_header(&root).unwrap(), "_session=s");
    let other_host = Url::parse("http://localhost:1/").unwrap();
    assert_eq!(browser.cookie_header(&other_host), None);
    browser.store(
        &url,
        "_session=; path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT",
    );
    browser.store(&url, "dir=; Max-Age=0");
    assert_eq!(
        browser.cookie_header(&other_port).unwrap(),
        "_interaction=1"
    );
}

#[test]
fn parse_form_reads_action_inputs_and_first_named_button() {
    let base = Url::parse("http://127.0.0.1:9/session/end").unwrap();
    let html = r#"<p>x</p><form method="post" action="/session/end/confirm?a=1&amp;b=2" id="f">
        <input type="hidden" name="xsrf" value="abc"/><input type="text" name="login">
        <button type="submit" name="logout" value="yes">Yes</button>
        <button type="submit" name="no" value="1">No</button></form>"#;
    let mut form = parse_form(html, &base).unwrap();
    assert_eq!(
        form.action.as_str(),
        "http://127.0.0.1:9/session/end/confirm?a=1&b=2"
    );
    assert_eq!(form.method, "post");
    form.set("login", "alice");
    assert_eq!(
        form.fields,
        vec![
            ("xsrf".to_owned(), "abc".to_owned()),
            ("login".to_owned(), "alice".to_owned()),
            ("logout".to_owned(), "yes".to_owned()),
        ]
    );
}
