//! `[[providers]]` -> [`ProviderConfig`]: applies each preset's defaults (issuer, scopes, where
//! the groups live) and checks that routes name only configured providers. The cheap syntax
//! checks of the section live in [`super::later`]; values it already reported are skipped
//! here rather than reported twice. Nothing here contacts a provider or reads a secret.

use url::Url;

use super::convert::Problems;
use super::file::{FileConfig, ProviderFile};
use crate::secrets::SecretRef;

/// Google's fixed issuer.
const GOOGLE_ISSUER: &str = "https://accounts.google.com";

/// Provider presets: the defaults and claim mappings each identity provider needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// Any OpenID provider: groups from `groups`.
    Generic,
    /// Okta: asks for the `groups` scope; groups from `groups`.
    Okta,
    /// Microsoft Entra ID: groups from `groups` (object ids unless configured otherwise);
    /// a token with too many groups carries an overage marker instead.
    Entra,
    /// Google: no groups; the Workspace domain arrives in the `hd` claim.
    Google,
    /// Keycloak: groups from `groups` and realm roles from `realm_access.roles`.
    Keycloak,
    /// AWS Cognito user pools: groups from `cognito:groups`.
    Cognito,
}

impl Preset {
    /// Parses the config spelling.
    pub fn parse(text: &str) -> Option<Preset> {
        Some(match text {
            "generic" => Preset::Generic,
            "okta" => Preset::Okta,
            "entra" => Preset::Entra,
            "google" => Preset::Google,
            "keycloak" => Preset::Keycloak,
            "cognito" => Preset::Cognito,
            _ => return None,
        })
    }

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Generic => "generic",
            Preset::Okta => "okta",
            Preset::Entra => "entra",
            Preset::Google => "google",
            Preset::Keycloak => "keycloak",
            Preset::Cognito => "cognito",
        }
    }

    /// Scopes asked for when the config names none.
    pub fn default_scopes(self) -> Vec<String> {
        let mut scopes = vec!["openid", "email", "profile"];
        if self == Preset::Okta {
            scopes.push("groups");
        }
        scopes.into_iter().map(str::to_owned).collect()
    }

    /// Claims (dotted paths) whose values become groups when the config names none.
    pub fn default_groups_claims(self) -> Vec<String> {
        let claims: &[&str] = match self {
            Preset::Generic | Preset::Okta | Preset::Entra => &["groups"],
            Preset::Google => &[],
            Preset::Keycloak => &["groups", "realm_access.roles"],
            Preset::Cognito => &["cognito:groups"],
        };
        claims.iter().map(|c| (*c).to_owned()).collect()
    }
}

/// One OpenID provider for browser login, validated.
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    /// `id`: unique; the `provider=` login parameter, the `providers` policy criterion and
    /// the audit trail use it.
    pub id: String,
    /// `preset`. Default `generic`.
    pub preset: Preset,
    /// `issuer`: exactly as written (a trailing `/` matters to token `iss` checks); must equal
    /// the discovery document's `issuer` and every id_token's `iss`. Checked to be a URL.
    pub issuer: String,
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`: None for a public client (PKCE only).
    pub client_secret: Option<SecretRef>,
    /// `scopes`: always includes `openid`. Default from the preset.
    pub scopes: Vec<String>,
    /// `groups_claim`: dotted claim paths whose values are the user's groups. Default from
    /// the preset.
    pub groups_claims: Vec<String>,
    /// `display_name`: shown on the login chooser. Default the id.
    pub display_name: String,
    /// `userinfo`: merge userinfo claims at login. Default false.
    pub userinfo: bool,
    /// `groups_endpoint` (Entra): where to list groups on a groups overage. None = an
    /// overage fails the login with a clear message.
    pub groups_endpoint: Option<Url>,
}

/// Converts every provider and checks route `providers` keys name existing ones.
pub(crate) fn convert_providers(file: &FileConfig, p: &mut Problems) -> Vec<ProviderConfig> {
    let providers: Vec<ProviderConfig> = file
        .providers
        .iter()
        .enumerate()
        .filter_map(|(i, provider)| convert_provider(&format!("providers[{i}]"), provider, p))
        .collect();
    for (i, route) in file.routes.iter().enumerate() {
        for (j, id) in route.providers.iter().flatten().enumerate() {
            if !file.providers.iter().any(|provider| &provider.id == id) {
                p.add(
                    format!("routes[{i}].providers[{j}]"),
                    format!("no [[providers]] entry has id `{id}`"),
                );
            }
        }
    }
    providers
}

fn convert_provider(at: &str, file: &ProviderFile, p: &mut Problems) -> Option<ProviderConfig> {
    // Unknown presets and bad issuers were reported by `later`; skip quietly.
    let preset = match file.preset.as_deref() {
        Some(text) => Preset::parse(text)?,
        None => Preset::Generic,
    };
    let issuer = match (&file.issuer, preset) {
        (Some(text), _) => {
            Url::parse(text).ok()?;
            text.clone()
        }
        (None, Preset::Google) => GOOGLE_ISSUER.to_owned(),
        (None, _) => return None,
    };
    let client_secret = match &file.client_secret {
        Some(text) => Some(SecretRef::parse(text).ok()?),
        None => None,
    };
    let groups_claims = match &file.groups_claim {
        Some(path) if claim_path_ok(path) => vec![path.clone()],
        Some(path) => {
            p.add(
                format!("{at}.groups_claim"),
                format!(
                    "`{path}`: expected a claim name or a dotted path like `realm_access.roles`"
                ),
            );
            return None;
        }
        None => preset.default_groups_claims(),
    };
    let groups_endpoint = match &file.groups_endpoint {
        Some(text) if preset != Preset::Entra => {
            p.add(
                format!("{at}.groups_endpoint"),
                format!("`{text}`: only the entra preset uses a groups endpoint"),
            );
            return None;
        }
        Some(text) => match Url::parse(text) {
            Ok(url) if url.scheme() == "https" || url.scheme() == "http" => Some(url),
            _ => {
                p.add(
                    format!("{at}.groups_endpoint"),
                    format!("`{text}`: expected an http(s) URL"),
                );
                return None;
            }
        },
        None => None,
    };
    Some(ProviderConfig {
        id: file.id.clone(),
        preset,
        issuer,
        client_id: file.client_id.clone(),
        client_secret,
        scopes: file
            .scopes
            .clone()
            .unwrap_or_else(|| preset.default_scopes()),
        groups_claims,
        display_name: file.display_name.clone().unwrap_or_else(|| file.id.clone()),
        userinfo: file.userinfo.unwrap_or(false),
        groups_endpoint,
    })
}

/// Non-empty segments separated by single dots, no whitespace.
fn claim_path_ok(path: &str) -> bool {
    !path.is_empty()
        && path
            .split('.')
            .all(|segment| !segment.is_empty() && !segment.chars().any(char::is_whitespace))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    fn load(providers: &str) -> Result<crate::config::Config, crate::config::ConfigErrors> {
        let text = format!(
            "version = 1\n{providers}\n[[routes]]\nid = \"app\"\nupstream = \"http://127.0.0.1:1\"\nproviders = [\"corp\"]\n[routes.policy]\nallow = [{{ groups = [\"eng\"] }}]\n"
        );
        load_str(&text, Vec::new())
    }

    #[test]
    fn presets_set_scopes_and_groups_claims() {
        let config = load(
            "[[providers]]\nid = \"corp\"\npreset = \"okta\"\nissuer = \"https://corp.okta.com\"\nclient_id = \"c\"\n\
             [[providers]]\nid = \"kc\"\npreset = \"keycloak\"\nissuer = \"https://kc/realms/x\"\nclient_id = \"c\"\n\
             [[providers]]\nid = \"g\"\npreset = \"google\"\nclient_id = \"c\"\n\
             [[providers]]\nid = \"cog\"\npreset = \"cognito\"\nissuer = \"https://cognito-idp.eu-west-1.amazonaws.com/pool\"\nclient_id = \"c\"\n",
        )
        .unwrap();
        let [okta, kc, google, cognito] = &config.providers[..] else {
            panic!("four providers expected");
        };
        assert!(okta.scopes.contains(&"groups".to_owned()));
        assert_eq!(okta.groups_claims, ["groups"]);
        assert_eq!(kc.groups_claims, ["groups", "realm_access.roles"]);
        assert_eq!(google.issuer, "https://accounts.google.com");
        assert!(google.groups_claims.is_empty());
        assert_eq!(cognito.groups_claims, ["cognito:groups"]);
        assert_eq!(config.routes[0].providers, ["corp"]);
        assert_eq!(okta.display_name, "corp");
    }

    #[test]
    fn groups_claim_overrides_the_preset() {
        let config = load(
            "[[providers]]\nid = \"corp\"\nissuer = \"https://id.corp\"\nclient_id = \"c\"\ngroups_claim = \"resource_access.app.roles\"\n",
        )
        .unwrap();
        assert_eq!(config.providers[0].preset, Preset::Generic);
        assert_eq!(
            config.providers[0].groups_claims,
            ["resource_access.app.roles"]
        );
    }

    #[test]
    fn bad_values_are_reported_with_paths() {
        let errors = load(
            "[[providers]]\nid = \"corp\"\nissuer = \"https://id.corp\"\nclient_id = \"c\"\ngroups_claim = \"a..b\"\ngroups_endpoint = \"https://graph\"\n",
        )
        .unwrap_err();
        assert!(
            errors
                .0
                .iter()
                .any(|e| e.path == "providers[0].groups_claim"),
            "{errors}"
        );
    }

    #[test]
    fn route_must_name_a_configured_provider() {
        let errors = load(
            "[[providers]]\nid = \"other\"\nissuer = \"https://id.corp\"\nclient_id = \"c\"\n",
        )
        .unwrap_err();
        assert!(
            errors
                .0
                .iter()
                .any(|e| e.path == "routes[0].providers[0]" && e.message.contains("corp")),
            "{errors}"
        );
    }

    #[test]
    fn groups_endpoint_is_for_entra_only() {
        let errors = load(
            "[[providers]]\nid = \"corp\"\nissuer = \"https://id.corp\"\nclient_id = \"c\"\ngroups_endpoint = \"https://graph\"\n",
        )
        .unwrap_err();
        assert!(
            errors
                .0
                .iter()
                .any(|e| e.path == "providers[0].groups_endpoint"),
            "{errors}"
        );
        let config = load(
            "[[providers]]\nid = \"corp\"\npreset = \"entra\"\nissuer = \"https://login.microsoftonline.com/t/v2.0\"\nclient_id = \"c\"\ngroups_endpoint = \"https://graph.microsoft.com/v1.0/me/memberOf\"\n",
        )
        .unwrap();
        assert!(config.providers[0].groups_endpoint.is_some());
    }

    #[test]
    fn claim_paths() {
        assert!(claim_path_ok("groups"));
        assert!(claim_path_ok("cognito:groups"));
        assert!(claim_path_ok("realm_access.roles"));
        assert!(!claim_path_ok(""));
        assert!(!claim_path_ok(".groups"));
        assert!(!claim_path_ok("a b"));
    }
}
