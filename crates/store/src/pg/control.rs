//! What the control tower changes at run time on PostgreSQL (see the SQLite backend's
//! `control.rs`). Each change also sends a `NOTIFY` on the schema's control channel, so
//! that the other instances put the new subscriptions in force at once (their listener
//! also compares `config_version` every second, for a notification it missed).

use super::{PgConn, PgStore};
use crate::codec::{decode_sub, from_us, list_json, to_us};
use crate::writer::Config;
use crate::{SinkControl, StoreError, Subscription, SubscriptionOrigin, SubscriptionRecord};
use time::OffsetDateTime;

/// Most rows a configuration listing returns.
const LIST_LIMIT: i64 = 10_000;

/// The subscriptions in force (tombstones left out), by name, and the version, in one
/// statement (one snapshot).
pub(super) const READ_CONFIG: &str =
    "SELECT v.version, s.name, s.sink, s.types, s.sources, s.personal_data FROM config_version v
     LEFT JOIN subscriptions s ON NOT s.deleted WHERE v.id = 1 ORDER BY s.name";

/// [`READ_CONFIG`]'s rows as a configuration.
pub(super) fn config_from(rows: &[postgres::Row]) -> Result<Config, StoreError> {
    let mut version = 0;
    let mut subs = Vec::new();
    for r in rows {
        version = r.get(0);
        if let Some(name) = r.get::<_, Option<String>>(1) {
            let (sink, types, sources): (Option<String>, Option<&str>, Option<&str>) =
                (r.get(2), r.get(3), r.get(4));
            subs.push(decode_sub(
                name,
                sink.unwrap_or_default(),
                types.unwrap_or("[]"),
                sources.unwrap_or("[]"),
                r.get(5),
            )?);
        }
    }
    Ok((version, subs))
}

/// Counts up `config_version`, tells the other instances, and reads the subscriptions in
/// force.
fn bump(c: &mut PgConn) -> Result<Config, StoreError> {
    c.exec(
        "UPDATE config_version SET version = version + 1 WHERE id = 1",
        &[],
    )?;
    let config = config_from(&c.query(READ_CONFIG, &[])?)?;
    let channel = super::control_channel(&c.opts.schema);
    c.exec(
        "SELECT pg_notify($1, $2)",
        &[&channel, &config.0.to_string()],
    )?;
    Ok(config)
}

impl PgStore {
    /// Sets the configured subscriptions (at start; see the SQLite backend).
    pub(crate) async fn sync_subscriptions(
        &self,
        subs: Vec<Subscription>,
    ) -> Result<(), StoreError> {
        self.write(move |c, ctx| {
            let now = to_us(OffsetDateTime::now_utc());
            for s in &subs {
                c.exec(
                    "INSERT INTO subscriptions (name, sink, types, sources, personal_data, origin, deleted, updated_at)
                     VALUES ($1, $2, $3, $4, $5, 'config', false, $6)
                     ON CONFLICT (name) DO UPDATE SET sink = excluded.sink, types = excluded.types,
                       sources = excluded.sources, personal_data = excluded.personal_data,
                       updated_at = excluded.updated_at
                     WHERE subscriptions.origin = 'config' AND NOT subscriptions.deleted
                       AND (subscriptions.sink, subscriptions.types, subscriptions.sources,
                            subscriptions.personal_data)
                           IS DISTINCT FROM (excluded.sink, excluded.types, excluded.sources,
                            excluded.personal_data)",
                    &[
                        &s.name,
                        &s.sink,
                        &list_json(&s.types),
                        &list_json(&s.sources),
                        &s.personal_data,
                        &now,
                    ],
                )?;
            }
            let names: Vec<String> = subs.iter().map(|s| s.name.clone()).collect();
            c.exec(
                "DELETE FROM subscriptions WHERE (origin = 'config' OR deleted) AND name <> ALL($1::text[])",
                &[&names],
            )?;
            ctx.config = Some(bump(c)?);
            Ok(())
        })
        .await
    }

    /// Reads the subscriptions in force into the writer's rules (at open).
    pub(super) async fn load_config(&self) -> Result<(), StoreError> {
        self.write(|c, ctx| {
            ctx.config = Some(config_from(&c.query(READ_CONFIG, &[])?)?);
            Ok(())
        })
        .await
    }

    pub(crate) async fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>, StoreError> {
        self.read(|c| {
            let rows = c.query(
                "SELECT name, sink, types, sources, origin, updated_at, personal_data FROM subscriptions
                 WHERE NOT deleted ORDER BY name LIMIT $1",
                &[&LIST_LIMIT],
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let s = decode_sub(r.get(0), r.get(1), r.get(2), r.get(3), r.get(6))?;
                out.push(SubscriptionRecord {
                    name: s.name,
                    sink: s.sink,
                    types: s.types,
                    sources: s.sources,
                    personal_data: s.personal_data,
                    origin: SubscriptionOrigin::parse(r.get(4))?,
                    updated_at: from_us(r.get(5)),
                });
            }
            Ok(out)
        })
        .await
    }

    pub(crate) async fn put_subscription(&self, sub: Subscription) -> Result<bool, StoreError> {
        self.write(move |c, ctx| {
            let live: Option<bool> = c
                .query_opt(
                    "SELECT NOT deleted FROM subscriptions WHERE name = $1",
                    &[&sub.name],
                )?
                .map(|r| r.get(0));
            c.exec(
                "INSERT INTO subscriptions (name, sink, types, sources, personal_data, origin, deleted, updated_at)
                 VALUES ($1, $2, $3, $4, $5, 'api', false, $6)
                 ON CONFLICT (name) DO UPDATE SET sink = excluded.sink, types = excluded.types,
                   sources = excluded.sources, personal_data = excluded.personal_data, origin = 'api',
                   deleted = false, updated_at = excluded.updated_at",
                &[
                    &sub.name,
                    &sub.sink,
                    &list_json(&sub.types),
                    &list_json(&sub.sources),
                    &sub.personal_data,
                    &to_us(OffsetDateTime::now_utc()),
                ],
            )?;
            ctx.config = Some(bump(c)?);
            Ok(live != Some(true))
        })
        .await
    }

    pub(crate) async fn delete_subscription(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.write(move |c, ctx| {
            let n = c.exec(
                "UPDATE subscriptions SET deleted = true, updated_at = $2 WHERE name = $1 AND NOT deleted",
                &[&name, &to_us(OffsetDateTime::now_utc())],
            )?;
            if n > 0 {
                ctx.config = Some(bump(c)?);
            }
            Ok(n > 0)
        })
        .await
    }

    pub(crate) async fn sink_controls(&self) -> Result<Vec<SinkControl>, StoreError> {
        self.read(|c| {
            Ok(c.query(
                "SELECT sink, paused, changed_at, changed_by FROM sink_controls ORDER BY sink LIMIT $1",
                &[&LIST_LIMIT],
            )?
            .iter()
            .map(|r| SinkControl {
                sink: r.get(0),
                paused: r.get(1),
                changed_at: from_us(r.get(2)),
                changed_by: r.get(3),
            })
            .collect())
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
            c.exec(
                "INSERT INTO sink_controls (sink, paused, changed_at, changed_by) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (sink) DO UPDATE SET paused = excluded.paused, changed_at = excluded.changed_at,
                   changed_by = excluded.changed_by",
                &[&row.sink, &row.paused, &at, &row.changed_by],
            )?;
            ctx.config = Some(bump(c)?);
            Ok(())
        })
        .await?;
        Ok(ctl)
    }

    pub(crate) async fn mark_reprocessed(&self, id: i64, into: i64) -> Result<bool, StoreError> {
        self.write(move |c, _| {
            let n = c.exec(
                "UPDATE inbox SET reprocessed_at = $2, reprocessed_into = $3
                 WHERE id = $1 AND status = 'rejected' AND reprocessed_at IS NULL",
                &[&id, &to_us(OffsetDateTime::now_utc()), &into],
            )?;
            Ok(n > 0)
        })
        .await
    }
}
