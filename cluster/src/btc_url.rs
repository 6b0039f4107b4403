//! A Bitcoin RPC URL as people write it (`http://user:pass@host:port`), split into what
//! bitcoincore-rpc and the `[btc]` config section take.

use eyre::{eyre, Result};

pub struct BtcUrl {
    /// Without credentials.
    pub url: String,
    pub credentials: Option<(String, String)>,
}

impl BtcUrl {
    /// A missing scheme means `http`.
    pub fn parse(s: &str) -> Result<Self> {
        let (scheme, rest) = s.split_once("://").unwrap_or(("http", s));
        let (credentials, host) = match rest.rsplit_once('@') {
            Some((creds, host)) => {
                let (u, p) = creds.split_once(':').ok_or_else(|| eyre!("{s}: credentials must be user:password"))?;
                (Some((u.to_string(), p.to_string())), host)
            }
            None => (None, rest),
        };
        Ok(Self { url: format!("{scheme}://{host}"), credentials })
    }

    pub fn client(&self) -> Result<bitcoincore_rpc::Client> {
        let auth = match &self.credentials {
            Some((u, p)) => bitcoincore_rpc::Auth::UserPass(u.clone(), p.clone()),
            None => bitcoincore_rpc::Auth::None,
        };
        Ok(bitcoincore_rpc::Client::new(&self.url, auth)?)
    }
}
