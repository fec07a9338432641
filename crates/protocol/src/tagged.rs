//! Decoding the internally tagged message enums without buffering them.
//!
//! A message is a map whose `type` key names the variant. serde's derive
//! for `#[serde(tag = "type")]` reads the whole map into a buffer (its
//! private `Content` tree) before it knows the variant, then decodes the
//! variant from that buffer: every message is read twice, and every map
//! and array in it is built twice. This module reads it once when `type`
//! is the first key, as this crate (and the canonical golden files)
//! always write it: the variant is read from `type`'s value, then its
//! fields straight from the rest of the map.
//!
//! Anything else keeps serde's behaviour exactly (the same values and the
//! same errors): a map whose first key is not `type` (keys in another
//! order) and the array form go through serde's derive of the same enum
//! with `tag = "type"`. So does a message the fast path cannot decode:
//! [`crate::codec::decode`] decodes it again with the fast path turned off
//! ([`buffered`]), so that its error is the one serde's derive gives (for a
//! field of the wrong type: `invalid type: string "one", expected u64`,
//! where msgpack's own reader would say `wrong msgpack marker`), and any
//! message serde's derive took is still taken. The fast path adds one
//! leniency: in a struct nested in a message, an integer key is read as a
//! field's index (ignored when unknown), as msgpack's reader reads a struct
//! decoded on its own.
//!
//! [`tagged_enum!`] writes the enum once and derives
//! its twins from the same tokens: `Serialize` with `tag = "type"` on the
//! enum itself, and two private `remote` twins for `Deserialize`, one
//! externally tagged (the fast path: serde's variant and field visitors,
//! fed by [`TagFirst`]) and one internally tagged (the fallback).

use serde::de::value::{
    BoolDeserializer, BorrowedBytesDeserializer, BorrowedStrDeserializer, BytesDeserializer,
    F64Deserializer, I64Deserializer, MapAccessDeserializer, SeqAccessDeserializer,
    StringDeserializer, U64Deserializer, UnitDeserializer,
};
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IgnoredAny, MapAccess, SeqAccess, Unexpected,
    VariantAccess, Visitor,
};
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

/// The key that names a message's variant.
pub(crate) const TAG: &str = "type";

/// An internally tagged enum with its two decoders, written by
/// [`tagged_enum!`](crate::tagged_enum).
pub(crate) trait TaggedEnum<'de>: Sized {
    /// What serde's derive says it expected: `internally tagged enum NAME`.
    const EXPECTING: &'static str;
    /// Decodes from a [`TagFirst`]: `type`'s value, then the fields.
    fn deserialize_tag_first<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error>;
    /// serde's derive with `tag = "type"`: buffers the message.
    fn deserialize_buffered<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error>;
}

thread_local! {
    /// Set while [`buffered`] runs: every [`TaggedEnum`] then decodes as
    /// serde's derive does.
    static BUFFERED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `decode` with every [`TaggedEnum`] decoded as serde's derive
/// does (buffering each message), on this thread.
pub(crate) fn buffered<R>(decode: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            BUFFERED.with(|buffered| buffered.set(self.0));
        }
    }
    let _restore = Restore(BUFFERED.with(|buffered| buffered.replace(true)));
    decode()
}

/// The `Deserialize` of every [`TaggedEnum`].
pub(crate) fn deserialize<'de, T, D>(deserializer: D) -> Result<T, D::Error>
where
    T: TaggedEnum<'de>,
    D: Deserializer<'de>,
{
    if BUFFERED.with(Cell::get) {
        T::deserialize_buffered(deserializer)
    } else {
        deserializer.deserialize_any(MessageVisitor(PhantomData))
    }
}

struct MessageVisitor<T>(PhantomData<T>);

impl<'de, T: TaggedEnum<'de>> Visitor<'de> for MessageVisitor<T> {
    type Value = T;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(T::EXPECTING)
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<T, M::Error> {
        match map.next_key_seed(FirstKey)? {
            None => Err(de::Error::missing_field(TAG)),
            Some(Key::Tag) => T::deserialize_tag_first(TagFirst { map }),
            Some(key) => T::deserialize_buffered(MapAccessDeserializer::new(Replay {
                key: Some(key),
                map,
            })),
        }
    }

    fn visit_seq<S: SeqAccess<'de>>(self, seq: S) -> Result<T, S::Error> {
        T::deserialize_buffered(SeqAccessDeserializer::new(seq))
    }
}

/// A map key, kept to be handed on: `type`, or any key a map may have in
/// a message (a string, bytes, a number, a boolean or nil).
enum Key<'de> {
    Tag,
    BorrowedStr(&'de str),
    String(String),
    BorrowedBytes(&'de [u8]),
    Bytes(Vec<u8>),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    Unit,
}

impl<'de> Key<'de> {
    /// Hands the key to `seed` (as the map would have).
    fn give<S: DeserializeSeed<'de>, E: de::Error>(self, seed: S) -> Result<S::Value, E> {
        match self {
            Key::Tag => seed.deserialize(BorrowedStrDeserializer::new(TAG)),
            Key::BorrowedStr(text) => seed.deserialize(BorrowedStrDeserializer::new(text)),
            Key::String(text) => seed.deserialize(StringDeserializer::new(text)),
            Key::BorrowedBytes(bytes) => seed.deserialize(BorrowedBytesDeserializer::new(bytes)),
            Key::Bytes(bytes) => seed.deserialize(BytesDeserializer::new(&bytes)),
            Key::U64(value) => seed.deserialize(U64Deserializer::new(value)),
            Key::I64(value) => seed.deserialize(I64Deserializer::new(value)),
            Key::F64(value) => seed.deserialize(F64Deserializer::new(value)),
            Key::Bool(value) => seed.deserialize(BoolDeserializer::new(value)),
            Key::Unit => seed.deserialize(UnitDeserializer::new()),
        }
    }
}

/// Reads a map key as a [`Key`].
struct FirstKey;

impl<'de> DeserializeSeed<'de> for FirstKey {
    type Value = Key<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key<'de>, D::Error> {
        deserializer.deserialize_any(KeyVisitor)
    }
}

struct KeyVisitor;

fn text_key<'de>(key: Key<'de>, text: &str) -> Key<'de> {
    if text == TAG {
        Key::Tag
    } else {
        key
    }
}

fn bytes_key<'de>(key: Key<'de>, bytes: &[u8]) -> Key<'de> {
    if bytes == TAG.as_bytes() {
        Key::Tag
    } else {
        key
    }
}

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // serde's own words for a key of a tagged enum.
        write!(formatter, "a type tag `{TAG}` or any other value")
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Key<'de>, E> {
        Ok(text_key(Key::BorrowedStr(text), text))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Key<'de>, E> {
        Ok(text_key(Key::String(text.to_owned()), text))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Key<'de>, E> {
        if text == TAG {
            Ok(Key::Tag)
        } else {
            Ok(Key::String(text))
        }
    }

    fn visit_borrowed_bytes<E: de::Error>(self, bytes: &'de [u8]) -> Result<Key<'de>, E> {
        Ok(bytes_key(Key::BorrowedBytes(bytes), bytes))
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Key<'de>, E> {
        Ok(bytes_key(Key::Bytes(bytes.to_vec()), bytes))
    }

    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Key<'de>, E> {
        if bytes == TAG.as_bytes() {
            Ok(Key::Tag)
        } else {
            Ok(Key::Bytes(bytes))
        }
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Key<'de>, E> {
        Ok(Key::U64(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Key<'de>, E> {
        Ok(Key::I64(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Key<'de>, E> {
        Ok(Key::F64(value))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Key<'de>, E> {
        Ok(Key::Bool(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Key<'de>, E> {
        Ok(Key::Unit)
    }

    fn visit_none<E: de::Error>(self) -> Result<Key<'de>, E> {
        Ok(Key::Unit)
    }
}

/// A map whose first key (`type`) has been read: its value names the
/// variant, the rest are the variant's fields. The [`Deserializer`] the
/// externally tagged twin reads as an enum.
pub(crate) struct TagFirst<M> {
    map: M,
}

impl<'de, M: MapAccess<'de>> Deserializer<'de> for TagFirst<M> {
    type Error = M::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, M::Error> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de, M: MapAccess<'de>> EnumAccess<'de> for TagFirst<M> {
    type Error = M::Error;
    type Variant = Fields<M>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        mut self,
        seed: V,
    ) -> Result<(V::Value, Fields<M>), M::Error> {
        let variant = self.map.next_value_seed(seed)?;
        Ok((variant, Fields { map: self.map }))
    }
}

/// The rest of a message's map once its variant is known: the variant's
/// fields. A second `type` key is refused, as serde's derive refuses it.
pub(crate) struct Fields<M> {
    map: M,
}

impl<'de, M: MapAccess<'de>> VariantAccess<'de> for Fields<M> {
    type Error = M::Error;

    fn unit_variant(mut self) -> Result<(), M::Error> {
        // A unit variant ignores every other key, as serde's derive does.
        while self.next_key_seed(PhantomData::<IgnoredAny>)?.is_some() {
            self.map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, M::Error> {
        seed.deserialize(MapAccessDeserializer::new(self))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, M::Error> {
        Err(de::Error::invalid_type(Unexpected::Map, &visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, M::Error> {
        visitor.visit_map(self)
    }
}

impl<'de, M: MapAccess<'de>> MapAccess<'de> for Fields<M> {
    type Error = M::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, M::Error> {
        self.map.next_key_seed(NotTheTag(seed))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, M::Error> {
        self.map.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// Reads a field's key, refuses a second `type`, and hands the key on.
struct NotTheTag<K>(K);

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for NotTheTag<K> {
    type Value = K::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<K::Value, D::Error> {
        match deserializer.deserialize_any(KeyVisitor)? {
            Key::Tag => Err(de::Error::duplicate_field(TAG)),
            key => key.give(self.0),
        }
    }
}

/// A map whose first key, not `type`, has been read: gives that key again,
/// then the rest, to serde's buffering derive.
struct Replay<'de, M> {
    key: Option<Key<'de>>,
    map: M,
}

impl<'de, M: MapAccess<'de>> MapAccess<'de> for Replay<'de, M> {
    type Error = M::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, M::Error> {
        match self.key.take() {
            Some(key) => key.give(seed).map(Some),
            None => self.map.next_key_seed(seed),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, M::Error> {
        self.map.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        let replayed = usize::from(self.key.is_some());
        self.map.size_hint().map(|n_left| n_left + replayed)
    }
}

/// Declares a message enum, internally tagged by `type` with snake_case
/// variant names, with `Serialize` derived and `Deserialize` by
/// [`tagged`](crate::tagged) (no buffering when `type` comes first).
/// The enum's name is given twice, as a name and as a string (serde's
/// `remote` attribute takes a string).
macro_rules! tagged_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident = $remote:literal { $($body:tt)* }
    ) => {
        $(#[$meta])*
        #[derive(Serialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        pub enum $name { $($body)* }

        const _: () = {
            /// The externally tagged twin: its variant and field visitors
            /// read a [`TagFirst`](crate::tagged::TagFirst).
            #[derive(Deserialize)]
            #[serde(remote = $remote, rename_all = "snake_case")]
            #[allow(dead_code)]
            enum TagFirstTwin { $($body)* }

            /// The twin as serde derives the enum: it buffers the message.
            #[derive(Deserialize)]
            #[serde(remote = $remote, tag = "type", rename_all = "snake_case")]
            #[allow(dead_code)]
            enum BufferedTwin { $($body)* }

            impl<'de> $crate::tagged::TaggedEnum<'de> for $name {
                const EXPECTING: &'static str = concat!("internally tagged enum ", $remote);

                fn deserialize_tag_first<D: serde::Deserializer<'de>>(
                    deserializer: D,
                ) -> Result<Self, D::Error> {
                    TagFirstTwin::deserialize(deserializer)
                }

                fn deserialize_buffered<D: serde::Deserializer<'de>>(
                    deserializer: D,
                ) -> Result<Self, D::Error> {
                    BufferedTwin::deserialize(deserializer)
                }
            }

            impl<'de> Deserialize<'de> for $name {
                fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                    $crate::tagged::deserialize(deserializer)
                }
            }
        };
    };
}

pub(crate) use tagged_enum;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::*;
    use crate::{ManagerId, TaskId, TaskSubmission};
    use proptest::prelude::*;
    use serde::Serialize;
    use std::fmt::Debug;

    /// The enum decoded through serde's buffering derive (the fallback,
    /// and how every message was decoded before this module).
    fn buffered_derive<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        buffered(|| crate::decode::<T>(bytes)).map_err(|error| error.reason)
    }

    /// The codec's decoding gives what serde's derive gives: the same
    /// value or the same error.
    fn agree<T>(bytes: &[u8]) -> Result<T, String>
    where
        T: serde::de::DeserializeOwned + PartialEq + Debug,
    {
        let before = buffered_derive::<T>(bytes);
        let after = crate::decode::<T>(bytes).map_err(|error| error.reason);
        match (&before, &after) {
            // The one difference: in a struct inside a message, a key that
            // is an integer is read as a field's index (an unknown index
            // being an extra field, ignored), where the buffer refused it.
            (Err(error), Ok(_)) if error.ends_with("expected field identifier") => {}
            _ => assert_eq!(before, after, "on {bytes:02x?}"),
        }
        after
    }

    #[derive(Serialize)]
    struct Map<'a>(#[serde(with = "pairs")] &'a [(&'a str, Value)]);

    /// A msgpack value for hand-made maps.
    #[derive(Clone, Serialize)]
    #[serde(untagged)]
    enum Value {
        Text(&'static str),
        Int(i64),
        List(Vec<Value>),
    }

    mod pairs {
        use super::Value;
        use serde::ser::{SerializeMap, Serializer};

        pub fn serialize<S: Serializer>(
            pairs: &&[(&str, Value)],
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(Some(pairs.len()))?;
            for (key, value) in pairs.iter() {
                map.serialize_entry(key, value)?;
            }
            map.end()
        }
    }

    fn map(pairs: &[(&str, Value)]) -> Vec<u8> {
        crate::encode(&Map(pairs))
    }

    #[test]
    fn the_same_errors_as_serde_derive() {
        use Value::{Int, List, Text};
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                map(&[("type", Text("launch_missiles"))]),
                "unknown variant `launch_missiles`",
            ),
            (
                map(&[("type", Text("submit"))]),
                "missing field `request_id`",
            ),
            (
                map(&[("type", Text("submit")), ("request_id", Int(1))]),
                "missing field `tasks`",
            ),
            (
                map(&[("type", Text("submit")), ("request_id", Text("one"))]),
                "invalid type",
            ),
            (
                map(&[("type", Text("goodbye")), ("type", Text("hello"))]),
                "duplicate field `type`",
            ),
            (
                map(&[
                    ("type", Text("watch")),
                    ("request_id", Int(1)),
                    ("request_id", Int(2)),
                ]),
                "duplicate field `request_id`",
            ),
            (map(&[]), "missing field `type`"),
            (map(&[("request_id", Int(1))]), "missing field `type`"),
            (
                map(&[("request_id", Int(1)), ("type", Text("nope"))]),
                "unknown variant `nope`",
            ),
            // serde reads an integer tag as the variant's index (`command`).
            (
                map(&[("type", Int(3)), ("request_id", Int(1))]),
                "missing field `command`",
            ),
            (
                crate::encode(&"submit"),
                "expected internally tagged enum FromClient",
            ),
            (
                map(&[("type", Text("watch")), ("task_ids", List(vec![Int(1)]))]),
                "invalid type",
            ),
        ];
        for (bytes, expected) in cases {
            let error = agree::<FromClient>(&bytes).expect_err("must fail");
            assert!(error.contains(expected), "{error} should say {expected}");
        }
    }

    #[test]
    fn keys_in_any_order_and_extra_keys_decode_alike() {
        use Value::{Int, List, Text};
        let task_id = Text("6f1c2f5e-0c2a-4b8e-9d3a-1a2b3c4d5e01");
        let cases = [
            map(&[
                ("type", Text("watch")),
                ("something_new", List(vec![])),
                ("task_ids", List(vec![task_id.clone()])),
                ("request_id", Int(7)),
            ]),
            map(&[
                ("request_id", Int(7)),
                ("type", Text("watch")),
                ("task_ids", List(vec![task_id.clone()])),
            ]),
            map(&[
                ("task_ids", List(vec![task_id])),
                ("request_id", Int(7)),
                ("type", Text("watch")),
            ]),
        ];
        for bytes in cases {
            assert_eq!(
                agree::<FromClient>(&bytes),
                Ok(FromClient::Watch {
                    request_id: 7,
                    task_ids: vec![TaskId::from_u128(0x6f1c2f5e_0c2a_4b8e_9d3a_1a2b3c4d5e01)],
                })
            );
        }
        let heartbeat = map(&[("type", Text("heartbeat")), ("extra", Int(1))]);
        assert_eq!(agree::<FromManager>(&heartbeat), Ok(FromManager::Heartbeat));
        // The array form: the tag first, then the fields in order.
        let array = crate::encode(&("submitted", 3, 2));
        assert_eq!(
            agree::<ToClient>(&array),
            Ok(ToClient::Submitted {
                request_id: 3,
                n_tasks: 2
            })
        );
    }

    fn samples() -> Vec<Vec<u8>> {
        let mut result = TaskResult::new(TaskId::from_u128(5), TaskState::Completed);
        result.manager_id = Some(ManagerId::from_u128(6));
        result.nodes = vec!["n1".into()];
        result.stdout_tail = b"out".to_vec();
        vec![
            crate::encode(&FromClient::Submit {
                request_id: 1,
                tasks: vec![TaskSubmission::new(TaskId::from_u128(1), "true")],
            }),
            crate::encode(&FromManager::Results {
                results: vec![result.clone()],
            }),
            crate::encode(&FromManager::Heartbeat),
            crate::encode(&ToClient::Results {
                results: vec![result],
            }),
            crate::encode(&ToManager::Shutdown {
                reason: "bye".into(),
            }),
        ]
    }

    proptest! {
        #[test]
        fn mutated_messages_decode_alike(
            which in 0usize..5,
            position in 0usize..400,
            value in any::<u8>(),
            cut in 0usize..8,
        ) {
            let mut bytes = samples().swap_remove(which);
            let index = position % bytes.len();
            bytes[index] = value;
            bytes.truncate(bytes.len() - cut.min(bytes.len()));
            agree::<FromClient>(&bytes).ok();
            agree::<ToClient>(&bytes).ok();
            agree::<FromManager>(&bytes).ok();
            agree::<ToManager>(&bytes).ok();
        }

        #[test]
        fn arbitrary_bytes_decode_alike(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            agree::<FromClient>(&bytes).ok();
            agree::<FromManager>(&bytes).ok();
        }
    }
}
