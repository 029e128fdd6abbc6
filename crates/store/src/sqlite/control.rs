//! What the control tower changes at run time: subscriptions, sink pauses, reprocessed
//! inbox rows. Every change of the subscriptions or of a sink's pause counts up
//! `config_version` and puts the subscriptions read back in force for the next batch.

use super::SqliteStore;
use crate::codec::{decode_sub, from_us, list_json, to_us};
use crate::writer::Config;
use crate::{SinkControl, StoreError, Subscription, SubscriptionOrigin, SubscriptionRecord};
use rusqlite::{params, Connection, OptionalExtension};
use time::OffsetDateTime;

/// Most rows a configuration listing returns.
const LIST_LIMIT: i64 = 10_000;

/// Counts up `config_version` and reads the subscriptions in force.
fn bump(c: &Connection) -> Result<Config, StoreError> {
    c.prepare_cached("UPDATE config_version SET version = version + 1 WHERE id = 1")?
        .execute([])?;
    read_config(c)
}

/// The subscriptions in force (tombstones left out), by name, and the version.
pub(super) fn read_config(c: &Connection) -> Result<Config, StoreError> {
    let version: i64 = c
        .prepare_cached("SELECT version FROM config_version WHERE id = 1")?
        .query_row([], |r| r.get(0))?;
    let mut st = c.prepare_cached(
        "SELECT name, sink, types, sources, personal_data FROM subscriptions WHERE deleted = 0
         ORDER BY name",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, Option<bool>>(4)?,
        ))
    })?;
    let mut subs = Vec::new();
    for row in rows {
        let (name, sink, types, sources, personal_data) = row?;
        subs.push(decode_sub(name, sink, &types, &sources, personal_data)?);
    }
    Ok((version, subs))
}

impl SqliteStore {
    /// Sets the configured subscriptions (at start): each is written unless one of that
    /// name was changed or deleted through the API; configured ones no longer listed,
    /// and tombstones of names no longer listed, go.
    pub(crate) async fn sync_subscriptions(
        &self,
        subs: Vec<Subscription>,
    ) -> Result<(), StoreError> {
        self.write(move |c, ctx| {
            let now = to_us(OffsetDateTime::now_utc());
            for s in &subs {
                c.prepare_cached(
                    "INSERT INTO subscriptions (name, sink, types, sources, personal_data, origin, deleted, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'config', 0, ?6)
                     ON CONFLICT (name) DO UPDATE SET sink = excluded.sink, types = excluded.types,
                       sources = excluded.sources, personal_data = excluded.personal_data,
                       updated_at = excluded.updated_at
                     WHERE subscriptions.origin = 'config' AND subscriptions.deleted = 0
                       AND (subscriptions.sink IS NOT excluded.sink OR subscriptions.types IS NOT excluded.types
                            OR subscriptions.sources IS NOT excluded.sources
                            OR subscriptions.personal_data IS NOT excluded.personal_data)",
                )?
                .execute(params![
                    s.name,
                    s.sink,
                    list_json(&s.types),
                    list_json(&s.sources),
                    s.personal_data,
                    now
                ])?;
            }
            let names: Vec<String> = subs.iter().map(|s| s.name.clone()).collect();
            c.prepare_cached(
                "DELETE FROM subscriptions WHERE (origin = 'config' OR deleted = 1)
                   AND name NOT IN (SELECT value FROM json_each(?1))",
            )?
            .execute([list_json(&names)])?;
            ctx.config = Some(bump(c)?);
            Ok(())
        })
        .await
    }

    /// Reads the subscriptions in force into the writer's rules (at open).
    pub(super) async fn load_config(&self) -> Result<(), StoreError> {
        self.write(|c, ctx| {
            ctx.config = Some(read_config(c)?);
            Ok(())
        })
        .await
    }

    pub(crate) async fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT name, sink, types, sources, origin, updated_at, personal_data FROM subscriptions
                 WHERE deleted = 0 ORDER BY name LIMIT ?1",
            )?;
            let rows = st.query_map([LIST_LIMIT], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<bool>>(6)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (name, sink, types, sources, origin, updated_at, personal_data) = row?;
                let s = decode_sub(name, sink, &types, &sources, personal_data)?;
                out.push(SubscriptionRecord {
                    name: s.name,
                    sink: s.sink,
                    types: s.types,
                    sources: s.sources,
                    personal_data: s.personal_data,
                    origin: SubscriptionOrigin::parse(&origin)?,
                    updated_at: from_us(updated_at),
                });
            }
            Ok(out)
        })
        .await
    }

    pub(crate) async fn put_subscription(&self, sub: Subscription) -> Result<bool, StoreError> {
        self.write(move |c, ctx| {
            let live: Option<bool> = c
                .prepare_cached("SELECT deleted = 0 FROM subscriptions WHERE name = ?1")?
                .query_row([&sub.name], |r| r.get(0))
                .optional()?;
            c.prepare_cached(
                "INSERT INTO subscriptions (name, sink, types, sources, personal_data, origin, deleted, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'api', 0, ?6)
                 ON CONFLICT (name) DO UPDATE SET sink = excluded.sink, types = excluded.types,
                   sources = excluded.sources, personal_data = excluded.personal_data, origin = 'api',
                   deleted = 0, updated_at = excluded.updated_at",
            )?
            .execute(params![
                sub.name,
                sub.sink,
                list_json(&sub.types),
                list_json(&sub.sources),
                sub.personal_data,
                to_us(OffsetDateTime::now_utc())
            ])?;
            ctx.config = Some(bump(c)?);
            Ok(live != Some(true))
        })
        .await
    }

    pub(crate) async fn delete_subscription(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.write(move |c, ctx| {
            let n = c
                .prepare_cached(
                    "UPDATE subscriptions SET deleted = 1, updated_at = ?2 WHERE name = ?1 AND deleted = 0",
                )?
                .execute(params![name, to_us(OffsetDateTime::now_utc())])?;
            if n > 0 {
                ctx.config = Some(bump(c)?);
            }
            Ok(n > 0)
        })
        .await
    }

    pub(crate) async fn sink_controls(&self) -> Result<Vec<SinkControl>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT sink, paused, changed_at, changed_by FROM sink_controls ORDER BY sink LIMIT ?1",
            )?;
            let rows = st.query_map([LIST_LIMIT], |r| {
                Ok(SinkControl {
                    sink: r.get(0)?,
                    paused: r.get(1)?,
                    changed_at: from_us(r.get(2)?),
                    changed_by: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub(crate) async fn set_sink_paused(
        &self,
        sink: &str,
        paused: bool,
        by: &str,
    ) -> Result<SinkControl, StoreError> {
        let at = to_us(OffsetDateTime::now_utc());
        let ctl = SinkControl {
            sink: sink.to_owned(),
            paused,
            changed_at: from_us(at),
            changed_by: by.to_owned(),
        };
        let row = ctl.clone();
        self.write(move |c, ctx| {
            c.prepare_cached(
                "INSERT INTO sink_controls (sink, paused, changed_at, changed_by) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (sink) DO UPDATE SET paused = excluded.paused, changed_at = excluded.changed_at,
                   changed_by = excluded.changed_by",
            )?
            .execute(params![row.sink, row.paused, at, row.changed_by])?;
            ctx.config = Some(bump(c)?);
            Ok(())
        })
        .await?;
        Ok(ctl)
    }

    pub(crate) async fn mark_reprocessed(&self, id: i64, into: i64) -> Result<bool, StoreError> {
        self.write(move |c, _| {
            let n = c
                .prepare_cached(
                    "UPDATE inbox SET reprocessed_at = ?2, reprocessed_into = ?3
                     WHERE id = ?1 AND status = 'rejected' AND reprocessed_at IS NULL",
                )?
                .execute(params![id, to_us(OffsetDateTime::now_utc()), into])?;
            Ok(n > 0)
        })
        .await
    }
}
