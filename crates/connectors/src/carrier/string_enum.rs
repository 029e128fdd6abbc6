//! A partner's closed vocabulary (statuses, sub-statuses) as an enum that still accepts
//! values added later: every known string is a variant, anything else is `Other(String)`,
//! so a new partner code never fails deserialization and is mapped as "unknown".

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
        #[serde(from = "String")]
        pub(crate) enum $name {
            $($(#[$vm])* $variant,)*
            /// A value this version does not know (forward compatibility).
            Other(String),
        }

        impl $name {
            /// Every known value, in documentation order.
            #[allow(dead_code)]
            pub(crate) const KNOWN: &'static [&'static str] = &[$($text,)*];

            /// Whether the partner sent an empty string (treated as absent).
            #[allow(dead_code)]
            pub(crate) fn is_blank(&self) -> bool {
                matches!(self, $name::Other(s) if s.trim().is_empty())
            }

            /// The wire string.
            pub(crate) fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Other(s) => s,
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                match s.as_str() {
                    $($text => $name::$variant,)*
                    _ => $name::Other(s),
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name::from(s.to_owned())
            }
        }
    };
}

pub(crate) use string_enum;
