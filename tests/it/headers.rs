//! What the upstream receives: identity headers dropped, X-Forwarded-* set, hop-by-hop gone,
//! path normalized, query untouched.

use std::time::Duration;

use crate::support::*;

#[tokio::test]
async fn spoofed_identity_and_hop_by_hop_headers_never_reach_the_upstream() {
    let upstream = echo_upstream().await;
    let proxy = start_proxy(&public_route("app", "/", &[upstream], "")).await;
    let response = client()
        .get(proxy.url("/hello"))
        .header("X-Portcullis-User", "evil")
        .header("X-Portcullis-Decision-Id", "forged")
        .header("X-Forwarded-User", "evil")
        .header("X-Forwarded-Email", "evil@example.com")
        .header("X-Forwarded-Groups", "admins")
        .header("X-Forwarded-Preferred-Username", "evil")
        .header("X-Auth-Request-User", "evil")
        .header("Remote-User", "evil")
        .header("X-Remote-User", "evil")
        .header("X_Portcullis_User", "evil")
        .header("X-Forwarded-For", "6.6.6.6")
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", "evil.example")
        .header("Forwarded", "for=6.6.6.6")
        .header("X-Real-IP", "6.6.6.6")
        .header("True-Client-IP", "6.6.6.6")
        .header("CF-Connecting-IP", "6.6.6.6")
        .header("X-Original-URL", "/admin")
        .header("X-Rewrite-URL", "/admin")
        .header("X-HTTP-Method-Override", "DELETE")
        .header("X-Method-Override", "DELETE")
        .header("Authorization", "Bearer secret-token")
        .header("Keep-Alive", "timeout=5")
        .header("Proxy-Authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .unwrap();
    let echo = echo_json(response).await;
    let headers = echo["headers"].as_object().unwrap();
    for name in [
        "x-portcullis-user",
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-groups",
        "x-forwarded-preferred-username",
        "x-auth-request-user",
        "remote-user",
        "x-remote-user",
        "x_portcullis_user",
        "forwarded",
        "true-client-ip",
        "cf-connecting-ip",
        "x-original-url",
        "x-rewrite-url",
        "x-http-method-override",
        "x-method-override",
        "authorization",
        "keep-alive",
        "proxy-authorization",
    ] {
        assert!(
            !headers.contains_key(name),
            "{name} reached the upstream: {headers:?}"
        );
    }
    let decision_id = headers["x-portcullis-decision-id"].as_str().unwrap();
    assert_ne!(decision_id, "forged");
    assert!(uuid::Uuid::parse_str(decision_id).is_ok());
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-real-ip"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-host"], proxy.addr.to_string().as_str());
    proxy.shutdown().await;
}

#[tokio::test]
async fn connection_header_cannot_remove_headers_portcullis_sets() {
    let upstream = echo_upstream().await;
    let proxy = start_proxy(&public_route("app", "/", &[upstream], "")).await;
    let answer = raw_request(
        proxy.addr,
        b"GET /x HTTP/1.1\r\nHost: gate.test\r\nConnection: close, x-forwarded-for, x-portcullis-decision-id, x-forwarded-proto\r\nX-Custom: keep\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
    let start = body.find('{').unwrap();
    let end = body.rfind('}').unwrap();
    let echo: serde_json::Value = serde_json::from_str(&body[start..=end]).unwrap();
    let headers = echo["headers"].as_object().unwrap();
    assert!(headers.contains_key("x-forwarded-for"), "{headers:?}");
    assert!(headers.contains_key("x-portcullis-decision-id"));
    assert!(headers.contains_key("x-forwarded-proto"));
    assert_eq!(headers["x-custom"], "keep");
    assert_eq!(headers["x-forwarded-host"], "gate.test");
    proxy.shutdown().await;
}

#[tokio::test]
async fn upstream_receives_the_normalized_path_and_the_untouched_query() {
    let upstream = echo_upstream().await;
    let proxy = start_proxy(&public_route("app", "/", &[upstream], "")).await;
    let answer = raw_request(
        proxy.addr,
        b"GET /a/../b//c/%7e/%2e%2e/d?q=%2F..%2f&x=a+b HTTP/1.1\r\nHost: gate.test\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    assert!(answer.contains("\"path\": \"/b/c/d\""), "{answer}");
    assert!(
        answer.contains("\"query\": \"q=%2F..%2f&x=a+b\""),
        "{answer}"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn strip_prefix_and_preserve_host() {
    let upstream = echo_upstream().await;
    let routes = public_route(
        "stripped",
        "/svc/",
        std::slice::from_ref(&upstream),
        "strip_prefix = true\npreserve_host = true",
    ) + &public_route("plain", "/", std::slice::from_ref(&upstream), "");
    let proxy = start_proxy(&routes).await;
    let echo = echo_json(
        client()
            .get(proxy.url("/svc/items/1?x=1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(echo["path"], "/items/1");
    assert_eq!(echo["query"], "x=1");
    assert_eq!(echo["headers"]["host"], proxy.addr.to_string().as_str());
    let echo = echo_json(client().get(proxy.url("/other")).send().await.unwrap()).await;
    assert_eq!(
        echo["headers"]["host"],
        upstream.trim_start_matches("http://"),
        "without preserve_host the upstream sees its own authority"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_absolute_form_target_decides_the_host_not_the_host_field() {
    let up = echo_upstream().await;
    let routes = format!(
        "[[routes]]\nid = \"a\"\nhost = \"a.example\"\npath = \"/\"\nupstream = \"{up}\"\nauth = [\"none\"]\n\
         [routes.policy]\nallow = [{{ public = true }}]\n\
         [[routes]]\nid = \"b\"\nhost = \"b.example\"\npath = \"/\"\nupstream = \"{up}\"\nauth = [\"none\"]\n\
         [routes.policy]\nallow = [{{ public = true }}]\ndeny = [{{ id = \"closed\", methods = [\"GET\"] }}]\n"
    );
    let proxy = start_proxy(&routes).await;
    // RFC 9112 3.2.2: the target's authority is the host; the Host field is ignored.
    let answer = raw_request(
        proxy.addr,
        b"GET http://a.example/x HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    assert!(
        answer.contains("\"x-forwarded-host\": \"a.example\""),
        "{answer}"
    );
    // And the other way round: route b (which denies) is chosen by its authority.
    let answer = raw_request(
        proxy.addr,
        b"GET http://b.example/x HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(raw_status(&answer), 403, "{answer}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn http11_requests_need_exactly_one_valid_host() {
    let up = echo_upstream().await;
    let proxy = start_proxy(&public_route("app", "/", &[up], "")).await;
    for head in [
        &b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\n"[..],
        b"GET /x HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n",
        b"GET /x HTTP/1.0\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        // RFC 9112 3.2: an invalid Host value is a 400 too (these reached the upstream).
        b"GET /x HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: user@a.example\r\nConnection: close\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: a.example/evil\r\nConnection: close\r\n\r\n",
        b"GET /x HTTP/1.0\r\nHost: a.example:80:81\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: a b\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
        b"GET http://user@a.example/x HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
        b"GET http://user@a.example/x HTTP/1.1\r\nHost: user@a.example\r\nConnection: close\r\n\r\n",
    ] {
        let answer = raw_request(proxy.addr, head, Duration::from_secs(5)).await;
        assert_eq!(raw_status(&answer), 400, "{answer}");
        assert!(
            !answer.contains("x-forwarded-host"),
            "reached the upstream: {answer}"
        );
    }
    // HTTP/1.0 may leave Host out; an empty Host and names no route pattern could match
    // (`my_service`) are valid fields.
    for head in [
        &b"GET /x HTTP/1.0\r\n\r\n"[..],
        b"GET /x HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: my_service:8080\r\nConnection: close\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: [::1]:18080\r\nConnection: close\r\n\r\n",
    ] {
        let answer = raw_request(proxy.addr, head, Duration::from_secs(5)).await;
        assert_eq!(raw_status(&answer), 200, "{answer}");
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn trace_is_refused_so_no_upstream_echoes_what_portcullis_adds() {
    let up = echo_upstream().await;
    let proxy = start_proxy(&public_route("app", "/", &[up], "")).await;
    let answer = raw_request(
        proxy.addr,
        b"TRACE /x HTTP/1.1\r\nHost: gate.test\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(raw_status(&answer), 501, "{answer}");
    assert!(
        !answer.contains("x-portcullis-decision-id"),
        "the upstream echoed the request: {answer}"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_upstream_cannot_set_portcullis_cookies_in_the_browser() {
    let up = upstream(|_| async {
        let mut response = text(200, "ok");
        for value in [
            "portcullis=planted-by-upstream; Path=/; HttpOnly",
            "portcullis_login=x; Path=/.portcullis/",
            "theme=dark; Path=/",
        ] {
            response
                .headers_mut()
                .append("set-cookie", value.parse().unwrap());
        }
        response
    })
    .await;
    let proxy = start_proxy(&public_route("app", "/", &[up], "")).await;
    let response = client().get(proxy.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        field_values(response.headers(), "set-cookie"),
        ["theme=dark; Path=/"]
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_h2c_upgrade_is_not_relayed_so_no_upstream_can_switch_past_the_policy() {
    let up = echo_upstream().await;
    let proxy = start_proxy(&public_route("app", "/", &[up], "")).await;
    for (connection, upgrade) in [
        ("Upgrade, HTTP2-Settings", "h2c"),
        // HTTP2-Settings left out of Connection, so it would otherwise pass as end-to-end.
        ("Upgrade", "h2c"),
        ("Upgrade", "h2c, websocketx"),
    ] {
        let request = format!(
            "GET /x HTTP/1.1\r\nHost: gate.test\r\nConnection: {connection}\r\nUpgrade: {upgrade}\r\n\
             HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
        );
        let answer = raw_request(proxy.addr, request.as_bytes(), Duration::from_secs(2)).await;
        assert_eq!(raw_status(&answer), 200, "{upgrade}: {answer}");
        let received = answer.to_ascii_lowercase();
        assert!(
            !received.contains("\"upgrade\"") && !received.contains("http2-settings"),
            "{upgrade}: the upstream was asked to switch: {answer}"
        );
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_method_in_lowercase_is_refused_so_no_framework_can_uppercase_it_past_the_policy() {
    let up = echo_upstream().await;
    let route = format!(
        "[[routes]]\nid = \"app\"\npath = \"/\"\nupstream = [\"{up}\"]\nauth = [\"none\"]\n\
         [routes.policy]\nallow = [{{ public = true }}]\ndeny = [{{ id = \"no-deletes\", methods = [\"DELETE\"] }}]\n"
    );
    let proxy = start_proxy(&route).await;
    for (method, expected) in [
        ("DELETE", 403),
        ("delete", 400),
        ("Delete", 400),
        ("GET", 200),
        ("get", 400),
        ("VERSION-CONTROL", 200),
        ("M-SEARCH", 200),
    ] {
        let request =
            format!("{method} /x HTTP/1.1\r\nHost: gate.test\r\nConnection: close\r\n\r\n");
        let answer = raw_request(proxy.addr, request.as_bytes(), Duration::from_secs(5)).await;
        assert_eq!(raw_status(&answer), expected, "{method}: {answer}");
    }
    proxy.shutdown().await;
}

/// Redirects to `/login` as many frameworks do: an absolute URL built from the Host it got,
/// in `Location` and in a `Refresh` field.
async fn redirecting_upstream() -> String {
    upstream(|req| async move {
        let host = req.headers()["host"].to_str().unwrap().to_owned();
        let mut response = text(302, "");
        response.headers_mut().insert(
            "location",
            http::HeaderValue::from_str(&format!("http://{host}/login?next=%2Fa")).unwrap(),
        );
        response.headers_mut().insert(
            "refresh",
            http::HeaderValue::from_str(&format!("0; url=http://{host}/login")).unwrap(),
        );
        response
    })
    .await
}

#[tokio::test]
async fn redirects_to_the_upstreams_own_address_become_the_clients_path() {
    let up = redirecting_upstream().await;
    let routes = format!(
        "{}{}",
        public_route(
            "app",
            "/app/",
            std::slice::from_ref(&up),
            "strip_prefix = true"
        ),
        public_route(
            "raw",
            "/raw/",
            std::slice::from_ref(&up),
            "rewrite_redirects = false"
        ),
    );
    let proxy = start_proxy(&routes).await;
    // Follows no redirects.
    let no_follow = client();
    // Both the own HTTP/1 client (GET) and hyper's (a POST with a body).
    for request in [
        no_follow.get(proxy.url("/app/x")),
        no_follow.post(proxy.url("/app/x")).body("form"),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 302);
        assert_eq!(response.headers()["location"], "/app/login?next=%2Fa");
        assert_eq!(response.headers()["refresh"], "0; url=/app/login");
    }
    // Opted out: the upstream's own address, as it wrote it.
    let response = no_follow.get(proxy.url("/raw/x")).send().await.unwrap();
    let upstream_login = format!("{up}/login?next=%2Fa");
    assert_eq!(response.headers()["location"], upstream_login.as_str());
    let upstream_refresh = format!("0; url={up}/login");
    assert_eq!(response.headers()["refresh"], upstream_refresh.as_str());
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_case_insensitive_route_decides_on_any_spelling_of_a_path() {
    // An IIS-style upstream serves /ADMIN as /admin: with case_insensitive_paths the deny
    // rule holds however the client spells it, and the upstream gets the path as sent.
    let up = echo_upstream().await;
    let routes = format!(
        "[[routes]]\nid = \"iis\"\npath = \"/App/\"\nupstream = [\"{up}\"]\nauth = [\"none\"]\n\
         strip_prefix = true\ncase_insensitive_paths = true\n[routes.policy]\n\
         allow = [{{ public = true }}]\ndeny = [{{ paths = [\"/app/Admin\", \"/app/**/*.CONFIG\"] }}]\n"
    );
    let proxy = start_proxy(&routes).await;
    let client = client();
    for path in [
        "/app/admin",
        "/APP/ADMIN/users",
        "/App/aDmIn",
        "/app/x/web.config",
    ] {
        let status = client.get(proxy.url(path)).send().await.unwrap().status();
        assert_eq!(status, 403, "{path}");
    }
    let response = client.get(proxy.url("/APP/Reports")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let echo: serde_json::Value = response.json().await.unwrap();
    // The prefix came off as it matched; the rest keeps the client's case.
    assert_eq!(echo["path"], "/Reports");
    proxy.shutdown().await;
}
