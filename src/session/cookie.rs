//! The two cookies: the session cookie (only the session id; HttpOnly, SameSite=Lax, Path=/,
//! and over https Secure with the `__Host-` prefix so no subdomain can set or shadow it) and the
//! short-lived login cookie binding a pending login to the browser that started it. Reading a
//! cookie allocates nothing, so a request without one costs next to nothing.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, header};

/// Cookie names and attributes, fixed at startup.
#[derive(Clone, Debug)]
pub(super) struct CookieJar {
    /// The session cookie's name as sent (`__Host-portcullis` over https).
    pub session: String,
    /// The login cookie's name as sent (`__Secure-portcullis_login` over https: `__Host-`
    /// would require Path=/, and this cookie is scoped to `/.portcullis/`).
    pub login: String,
    /// Whether cookies carry `Secure` (the public URL is https).
    pub secure: bool,
}

/// Path of the login cookie: only the callback needs it.
pub(super) const LOGIN_PATH: &str = "/.portcullis/";

impl CookieJar {
    pub(super) fn new(base: &str, secure: bool) -> Self {
        if secure {
            CookieJar {
                session: format!("__Host-{base}"),
                login: format!("__Secure-{base}_login"),
                secure,
            }
        } else {
            CookieJar {
                session: base.to_owned(),
                login: format!("{base}_login"),
                secure,
            }
        }
    }

    /// `Set-Cookie` for a new session; lives as long as the absolute timeout allows.
    pub(super) fn session_cookie(&self, value: &str, max_age: Duration) -> HeaderValue {
        self.set_cookie(&self.session, value, "/", max_age.as_secs())
    }

    /// `Set-Cookie` that removes the session cookie.
    pub(super) fn clear_session(&self) -> HeaderValue {
        self.set_cookie(&self.session, "", "/", 0)
    }

    /// `Set-Cookie` for a pending login.
    pub(super) fn login_cookie(&self, value: &str, max_age: Duration) -> HeaderValue {
        self.set_cookie(&self.login, value, LOGIN_PATH, max_age.as_secs())
    }

    /// `Set-Cookie` that removes the login cookie.
    pub(super) fn clear_login(&self) -> HeaderValue {
        self.set_cookie(&self.login, "", LOGIN_PATH, 0)
    }

    fn set_cookie(&self, name: &str, value: &str, path: &str, max_age: u64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let text = format!(
            "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
        );
        // Names are checked by config (letters, digits, `-`, `_`) and values are base64url ids,
        // so this cannot fail; an empty value is still a valid (if useless) header.
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// The first value of cookie `name` in the request's `Cookie` headers, without allocating.
pub(super) fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key.trim() == name).then(|| value.trim().trim_matches('"'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(header::COOKIE, HeaderValue::from_str(c).unwrap());
        }
        h
    }

    #[test]
    fn finds_the_named_cookie_among_others() {
        let h = headers(&["a=1; portcullis=abc ; b=2", "c=3"]);
        assert_eq!(cookie_value(&h, "portcullis"), Some("abc"));
        assert_eq!(cookie_value(&h, "c"), Some("3"));
        assert_eq!(cookie_value(&h, "portcullis_login"), None);
        assert_eq!(cookie_value(&h, "port"), None);
        assert_eq!(cookie_value(&HeaderMap::new(), "portcullis"), None);
    }

    #[test]
    fn plain_http_cookies_have_no_prefix_and_no_secure() {
        let jar = CookieJar::new("portcullis", false);
        let v = jar.session_cookie("ID", Duration::from_secs(60));
        assert_eq!(
            v.to_str().unwrap(),
            "portcullis=ID; Path=/; Max-Age=60; HttpOnly; SameSite=Lax"
        );
        let v = jar.login_cookie("L", Duration::from_secs(600));
        assert_eq!(
            v.to_str().unwrap(),
            "portcullis_login=L; Path=/.portcullis/; Max-Age=600; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn https_cookies_are_secure_and_prefixed() {
        let jar = CookieJar::new("gate", true);
        let v = jar.session_cookie("ID", Duration::from_secs(60));
        assert_eq!(
            v.to_str().unwrap(),
            "__Host-gate=ID; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure"
        );
        assert!(!v.to_str().unwrap().contains("Domain"));
        let v = jar.clear_session();
        assert!(
            v.to_str()
                .unwrap()
                .starts_with("__Host-gate=; Path=/; Max-Age=0;")
        );
        let v = jar.clear_login();
        assert!(
            v.to_str()
                .unwrap()
                .starts_with("__Secure-gate_login=; Path=/.portcullis/; Max-Age=0;")
        );
        assert!(v.to_str().unwrap().ends_with("; Secure"));
    }
}
