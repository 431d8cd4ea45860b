//! The bytes channels_redis stores for a message: a random prefix (so equal messages stay
//! distinct members of the sorted set), then the msgpack map, Fernet-encrypted when keys are
//! configured. The map carries `__asgi_channel__` when the message is for process-specific
//! channels: a string from `send`, a list of channel names from `group_send`.

use crate::fernet::{MultiFernet, TokenError};
use rmpv::Value as Mp;
use serde_json::{Map, Number, Value};

/// The envelope key channels_redis adds to messages bound for process-specific channels.
pub(crate) const CHANNEL_KEY: &str = "__asgi_channel__";

/// Who a message is addressed to, from its envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Envelope {
    /// No envelope: a message on a normal channel's own key.
    None,
    /// One channel (`send` to a process-specific channel).
    One(String),
    /// Several channels of one process (`group_send`).
    Many(Vec<String>),
}

/// Why stored bytes could not be turned back into a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// Fernet refused the token: another key, or tampered with.
    Decrypt,
    /// Fernet accepted the token but it is older than `expiry + 10` seconds.
    TokenExpired,
    /// Not msgpack, not a map, or (with no encryption configured here) an encrypted token.
    Format(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Decrypt => f.write_str(
                "cannot decrypt: the sender's symmetric_encryption_keys differ from ours",
            ),
            Self::TokenExpired => f.write_str("encrypted message is older than expiry + 10 s"),
            Self::Format(why) => write!(f, "not a channels_redis message: {why}"),
        }
    }
}

/// Encodes and decodes stored messages exactly as channels_redis's msgpack serializer does.
#[derive(Clone)]
pub(crate) struct Codec {
    /// Random bytes before each message (channels_redis's `random_prefix_length`, 12).
    random_prefix_length: usize,
    /// Fernet keys, when `symmetric_encryption_keys` are configured.
    crypter: Option<MultiFernet>,
    /// Token time-to-live: `expiry + 10` seconds, as channels_redis decrypts.
    ttl: u64,
}

impl Codec {
    pub(crate) fn new(
        random_prefix_length: usize,
        crypter: Option<MultiFernet>,
        expiry_secs: u64,
    ) -> Self {
        Self {
            random_prefix_length,
            crypter,
            ttl: expiry_secs + 10,
        }
    }

    /// The stored bytes for `fields` plus the envelope.
    pub(crate) fn encode(&self, fields: &Map<String, Value>, envelope: &Envelope) -> Vec<u8> {
        let mut entries: Vec<(Mp, Mp)> = fields
            .iter()
            .map(|(k, v)| (Mp::from(k.as_str()), json_to_mp(v)))
            .collect();
        match envelope {
            Envelope::None => {}
            Envelope::One(c) => entries.push((Mp::from(CHANNEL_KEY), Mp::from(c.as_str()))),
            Envelope::Many(cs) => entries.push((
                Mp::from(CHANNEL_KEY),
                Mp::Array(cs.iter().map(|c| Mp::from(c.as_str())).collect()),
            )),
        }
        let mut packed = Vec::with_capacity(64);
        // Writing into a Vec cannot fail.
        let _ = rmpv::encode::write_value(&mut packed, &Mp::Map(entries));
        if let Some(crypter) = &self.crypter {
            packed = crypter.encrypt(&packed);
        }
        let mut out = Vec::with_capacity(self.random_prefix_length + packed.len());
        out.extend((0..self.random_prefix_length).map(|_| rand::random::<u8>()));
        out.extend_from_slice(&packed);
        out
    }

    /// The fields and envelope of stored bytes.
    pub(crate) fn decode(
        &self,
        stored: &[u8],
    ) -> Result<(Map<String, Value>, Envelope), DecodeError> {
        let body = stored
            .get(self.random_prefix_length..)
            .ok_or_else(|| DecodeError::Format("shorter than the random prefix".into()))?;
        let plain;
        let body = match &self.crypter {
            Some(crypter) => {
                plain = crypter.decrypt(body, Some(self.ttl)).map_err(|e| match e {
                    TokenError::Invalid => DecodeError::Decrypt,
                    TokenError::Expired => DecodeError::TokenExpired,
                })?;
                &plain[..]
            }
            None => body,
        };
        let value = rmpv::decode::read_value(&mut &body[..]).map_err(|e| {
            if body.starts_with(b"gAAAAA") {
                DecodeError::Format(
                    "looks Fernet-encrypted, but no symmetric_encryption_keys are configured here"
                        .into(),
                )
            } else {
                DecodeError::Format(e.to_string())
            }
        })?;
        let Mp::Map(entries) = value else {
            return Err(DecodeError::Format("not a map".into()));
        };
        let mut fields = Map::with_capacity(entries.len());
        let mut envelope = Envelope::None;
        for (k, v) in entries {
            let key = match k {
                Mp::String(s) => s.into_str().unwrap_or_default(),
                other => mp_to_json(other).to_string(),
            };
            if key == CHANNEL_KEY {
                envelope = match v {
                    Mp::String(s) => Envelope::One(s.into_str().unwrap_or_default()),
                    Mp::Array(items) => Envelope::Many(
                        items
                            .into_iter()
                            .filter_map(|i| i.as_str().map(str::to_owned))
                            .collect(),
                    ),
                    _ => return Err(DecodeError::Format("bad __asgi_channel__".into())),
                };
            } else {
                fields.insert(key, mp_to_json(v));
            }
        }
        Ok((fields, envelope))
    }
}

fn json_to_mp(v: &Value) -> Mp {
    match v {
        Value::Null => Mp::Nil,
        Value::Bool(b) => Mp::Boolean(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_u64() {
                Mp::from(i)
            } else if let Some(i) = n.as_i64() {
                Mp::from(i)
            } else {
                Mp::F64(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(s) => Mp::from(s.as_str()),
        Value::Array(items) => Mp::Array(items.iter().map(json_to_mp).collect()),
        Value::Object(map) => Mp::Map(
            map.iter()
                .map(|(k, v)| (Mp::from(k.as_str()), json_to_mp(v)))
                .collect(),
        ),
    }
}

/// msgpack has more types than JSON: binary becomes an array of byte values, extension types
/// and non-finite floats become `null`, non-string map keys their JSON text.
fn mp_to_json(v: Mp) -> Value {
    match v {
        Mp::Nil | Mp::Ext(..) => Value::Null,
        Mp::Boolean(b) => Value::Bool(b),
        Mp::Integer(i) => match (i.as_u64(), i.as_i64()) {
            (Some(u), _) => Value::from(u),
            (None, Some(s)) => Value::from(s),
            _ => Value::Null,
        },
        Mp::F32(f) => Number::from_f64(f64::from(f)).map_or(Value::Null, Value::Number),
        Mp::F64(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Mp::String(s) => Value::String(s.into_str().unwrap_or_default()),
        Mp::Binary(b) => Value::Array(b.into_iter().map(Value::from).collect()),
        Mp::Array(items) => Value::Array(items.into_iter().map(mp_to_json).collect()),
        Mp::Map(entries) => Value::Object(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Mp::String(s) => s.into_str().unwrap_or_default(),
                        other => mp_to_json(other).to_string(),
                    };
                    (key, mp_to_json(v))
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn round_trips_with_envelopes_and_prefix() {
        let codec = Codec::new(12, None, 60);
        let f = fields(
            json!({"type": "chat.message", "n": -3, "big": 1u64 << 63, "x": 1.5, "l": [null, true, {"a": "b"}]}),
        );
        for env in [
            Envelope::None,
            Envelope::One("specific.a!b".into()),
            Envelope::Many(vec!["specific.a!b".into(), "specific.a!c".into()]),
        ] {
            let bytes = codec.encode(&f, &env);
            assert_eq!(codec.decode(&bytes).unwrap(), (f.clone(), env));
        }
        // Equal messages are distinct sorted-set members.
        assert_ne!(
            codec.encode(&f, &Envelope::None),
            codec.encode(&f, &Envelope::None)
        );
    }

    #[test]
    fn decodes_what_python_msgpack_packs() {
        // msgpack.packb({"type": "t", "__asgi_channel__": ["specific.p!1"], "b": b"\x01\x02"})
        let packed: &[u8] =
            b"\x83\xa4type\xa1t\xb0__asgi_channel__\x91\xacspecific.p!1\xa1b\xc4\x02\x01\x02";
        let mut stored = vec![0u8; 12];
        stored.extend_from_slice(packed);
        let (f, env) = Codec::new(12, None, 60).decode(&stored).unwrap();
        assert_eq!(Value::Object(f), json!({"type": "t", "b": [1, 2]}));
        assert_eq!(env, Envelope::Many(vec!["specific.p!1".into()]));
    }

    #[test]
    fn encryption_and_wrong_keys() {
        let enc = |k: &str| Codec::new(12, MultiFernet::from_configured_keys(&[k]), 60);
        let f = fields(json!({"type": "t"}));
        let bytes = enc("a").encode(&f, &Envelope::None);
        assert_eq!(enc("a").decode(&bytes).unwrap().0, f);
        assert_eq!(enc("b").decode(&bytes), Err(DecodeError::Decrypt));
        assert!(matches!(
            Codec::new(12, None, 60).decode(&bytes),
            Err(DecodeError::Format(_))
        ));
    }
}
