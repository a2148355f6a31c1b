//! Who is calling and what they may do: capabilities, roles, and the authenticated principal.

use crate::ids::{ApiKeyId, OrgId};
use serde::{Serialize, Serializer};
use std::fmt;

/// One thing a caller may be allowed to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// Read sessions, messages, polls, the event log and the WebSocket.
    Read,
    /// Send polls and vote.
    Send,
    /// Manage webhooks, sessions and API keys. Implies nothing else.
    Manage,
    /// Push inbound events from a messaging engine (API keys only).
    Ingest,
}

impl Capability {
    /// Every capability, in display order.
    pub const ALL: [Capability; 4] = [Self::Read, Self::Send, Self::Manage, Self::Ingest];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Send => "send",
            Self::Manage => "manage",
            Self::Ingest => "ingest",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of capabilities.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Capabilities(u8);

impl Capabilities {
    /// No capability at all.
    pub const NONE: Capabilities = Capabilities(0);
    /// Every capability: what a host application grants itself when it calls use cases directly.
    pub const ALL: Capabilities = Capabilities(0b1111);

    /// Whether `capability` is in the set.
    pub fn contains(self, capability: Capability) -> bool {
        self.0 & capability.bit() != 0
    }

    /// Whether every capability of `other` is also in `self`.
    pub fn includes(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// The set with `capability` added.
    pub fn with(self, capability: Capability) -> Self {
        Self(self.0 | capability.bit())
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The members in display order.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }

    /// Parses a comma-separated list (`"manage,send,read"`); `Err` names the first unknown entry.
    pub fn parse_list(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .try_fold(Self::NONE, |set, name| {
                Capability::parse(name)
                    .map(|c| set.with(c))
                    .ok_or_else(|| name.to_owned())
            })
    }

    /// The comma-separated form `parse_list` reads.
    pub fn to_list(self) -> String {
        self.iter()
            .map(Capability::as_str)
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl FromIterator<Capability> for Capabilities {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        iter.into_iter().fold(Self::NONE, Self::with)
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for Capabilities {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(Capability::as_str))
    }
}

/// A person's role in an organization, as a login token states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Owns the organization.
    Owner,
    /// Administers it.
    Admin,
    /// Works in it.
    Member,
    /// Looks only.
    Viewer,
}

impl Role {
    /// Reads a role name; unknown names are `None` and earn no capabilities.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "owner" => Some(Self::Owner),
            "admin" => Some(Self::Admin),
            "member" => Some(Self::Member),
            "viewer" => Some(Self::Viewer),
            _ => None,
        }
    }

    /// What the role may do: owner/admin manage, send, read; member send, read; viewer read.
    pub fn capabilities(self) -> Capabilities {
        use Capability::*;
        match self {
            Self::Owner | Self::Admin => [Manage, Send, Read].into_iter().collect(),
            Self::Member => [Send, Read].into_iter().collect(),
            Self::Viewer => [Read].into_iter().collect(),
        }
    }
}

/// How the caller proved who they are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// A script or service holding an API key.
    ApiKey(ApiKeyId),
    /// A person with a login token; the token's `sub`, if any.
    User(Option<String>),
    /// The application Herald is embedded in, which authenticated its caller itself.
    Host,
}

/// An authenticated caller: one organization and what it may do there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The only organization whose data this caller ever sees.
    pub organization: OrgId,
    /// What the caller may do.
    pub capabilities: Capabilities,
    /// Who the caller is.
    pub subject: Subject,
    /// When the credential stops being valid (epoch ms), if it expires.
    pub expires_at: Option<crate::Millis>,
}

impl Principal {
    /// A caller the embedding host vouches for: it authenticated the caller by its own means
    /// and grants `capabilities` in `organization`. No credential backs it, so it never expires.
    pub fn trusted(organization: OrgId, capabilities: Capabilities) -> Self {
        Self {
            organization,
            capabilities,
            subject: Subject::Host,
            expires_at: None,
        }
    }

    /// `Ok` when the caller holds `capability`, else [`crate::DomainError::Forbidden`].
    pub fn require(&self, capability: Capability) -> Result<(), crate::DomainError> {
        if self.capabilities.contains(capability) {
            Ok(())
        } else {
            Err(crate::DomainError::Forbidden(capability))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_map_to_the_documented_capabilities() {
        let owner = Role::Owner.capabilities();
        assert_eq!(owner.to_list(), "read,send,manage");
        assert_eq!(Role::Admin.capabilities(), owner);
        assert_eq!(Role::Member.capabilities().to_list(), "read,send");
        assert_eq!(Role::Viewer.capabilities().to_list(), "read");
        assert_eq!(Role::parse("superuser"), None);
    }

    #[test]
    fn capability_lists_parse_and_reject_unknown_names() {
        let set = Capabilities::parse_list("manage, send,read").unwrap();
        assert!(set.contains(Capability::Manage) && !set.contains(Capability::Ingest));
        assert_eq!(
            Capabilities::parse_list("read,root"),
            Err("root".to_owned())
        );
        assert!(set.includes(Capabilities::parse_list("read").unwrap()));
        assert!(!set.includes(Capabilities::parse_list("ingest").unwrap()));
        assert!(Capability::ALL
            .into_iter()
            .all(|c| Capabilities::ALL.contains(c)));
        assert_eq!(Capabilities::ALL.to_list(), "read,send,manage,ingest");
    }
}
