//! A real headless Chromium ([`crate::chromium`]) logs in through portcullis at the real
//! provider's form and lands on the upstream's page; the screenshot goes to
//! `target/screenshots/login.png`.

use std::time::Duration;

use super::Real;
use crate::chromium::Chromium;

#[tokio::test]
async fn chromium_logs_in_through_the_proxy_and_sees_the_upstream() {
    let Some(real) = Real::start(Duration::from_secs(300)).await else {
        return;
    };
    let Some(chromium) = Chromium::start().await else {
        return;
    };
    let client = chromium.client();
    client.goto(&real.url("/app/")).await.unwrap();
    let login = chromium
        .wait_until(Duration::from_secs(15), |c| async move {
            c.find(fantoccini::Locator::Css("input[name=login]"))
                .await
                .ok()
        })
        .await;
    let at = client.current_url().await.unwrap();
    assert!(
        real.is_provider(&at),
        "sent to the provider's login form: {at}"
    );
    login.send_keys("alice").await.unwrap();
    client
        .find(fantoccini::Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let app = real.url("/app/");
    let text = chromium
        .wait_until(Duration::from_secs(15), |c| {
            let app = app.clone();
            async move {
                let url = c.current_url().await.ok()?;
                if url.as_str() != app {
                    return None;
                }
                let body = c.find(fantoccini::Locator::Css("body")).await.ok()?;
                let text = body.text().await.ok()?;
                text.contains("x-portcullis-user").then_some(text)
            }
        })
        .await;
    assert!(text.contains("alice"), "{text}");
    assert!(text.contains("eng,security"), "{text}");
    let shot = chromium.save_screenshot("login.png").await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 1000);
    chromium.close().await;
    real.shutdown().await;
}
