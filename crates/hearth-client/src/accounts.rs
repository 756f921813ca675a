//! The web API's account calls.

use serde::Deserialize;
use serde_json::json;

use crate::Error;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct TokenPair {
    pub account_id: i64,
    pub name: String,
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
}

#[derive(Debug, Clone)]
pub struct Accounts {
    base: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct ApiErrorBody {
    error: String,
    message: String,
}

impl Accounts {
    /// `base` is the web port's URL, e.g. `http://127.0.0.1:8080`.
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    async fn call(&self, path: &str, body: serde_json::Value) -> Result<reqwest::Response, Error> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Err(match serde_json::from_str::<ApiErrorBody>(&text) {
            Ok(body) => Error::Api {
                status,
                code: body.error,
                message: body.message,
            },
            Err(_) => Error::Api {
                status,
                code: "http".to_owned(),
                message: text,
            },
        })
    }

    pub async fn register(&self, name: &str, password: &str) -> Result<i64, Error> {
        let response = self
            .call(
                "/api/register",
                json!({ "name": name, "password": password }),
            )
            .await?;
        let body: serde_json::Value = response.json().await?;
        Ok(body["account_id"].as_i64().unwrap_or_default())
    }

    pub async fn login(&self, name: &str, password: &str) -> Result<TokenPair, Error> {
        let response = self
            .call("/api/login", json!({ "name": name, "password": password }))
            .await?;
        Ok(response.json().await?)
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, Error> {
        let response = self
            .call("/api/refresh", json!({ "refresh_token": refresh_token }))
            .await?;
        Ok(response.json().await?)
    }

    pub async fn logout(&self, token: &str) -> Result<(), Error> {
        self.call("/api/logout", json!({ "token": token })).await?;
        Ok(())
    }

    pub async fn change_password(&self, name: &str, old: &str, new: &str) -> Result<(), Error> {
        self.call(
            "/api/password",
            json!({ "name": name, "old_password": old, "new_password": new }),
        )
        .await?;
        Ok(())
    }
}
