//! Workflow state on PostgreSQL (see [`crate::flow`]).

use super::{PgConn, PgStore};
use crate::codec::now_ms;
use crate::flow::*;
use crate::StoreError;
use postgres::Row;

macro_rules! wf_cols {
    () => {
        "id, kind, entity, status, stage, state, pending, retry_at, version, created_at, updated_at"
    };
}
macro_rules! task_cols {
    () => {
        "id, workflow, entity, kind, status, title, detail, claimed_by, decision, resolved_by, reason, created_at, updated_at"
    };
}

fn wf_row(r: &Row) -> WfRecord {
    WfRecord {
        id: r.get(0),
        kind: r.get(1),
        entity: r.get(2),
        status: r.get(3),
        stage: r.get(4),
        state: r.get(5),
        pending: r.get(6),
        retry_at: r.get(7),
        version: r.get(8),
        created_at: r.get(9),
        updated_at: r.get(10),
    }
}

fn task_row(r: &Row) -> WfTask {
    WfTask {
        id: r.get(0),
        workflow: r.get(1),
        entity: r.get(2),
        kind: r.get(3),
        status: r.get(4),
        title: r.get(5),
        detail: r.get(6),
        claimed_by: r.get(7),
        decision: r.get(8),
        resolved_by: r.get(9),
        reason: r.get(10),
        created_at: r.get(11),
        updated_at: r.get(12),
    }
}

fn offer(c: &mut PgConn, i: &NewInput, now: i64) -> Result<bool, StoreError> {
    c.exec(
        "INSERT INTO workflows (id, kind, entity, status, stage, state, pending, retry_at, version, created_at, updated_at)
         VALUES ($1, $2, $3, 'running', 'new', 'null', '[]', NULL, 0, $4, $4) ON CONFLICT (id) DO NOTHING",
        &[&i.workflow, &i.wf_kind, &i.entity, &now],
    )?;
    let n = c.exec(
        "INSERT INTO workflow_inputs (workflow, kind, key, body, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (workflow, key) DO NOTHING",
        &[&i.workflow, &i.kind, &i.key, &i.body, &now],
    )?;
    Ok(n > 0)
}

fn task_by_id(c: &mut PgConn, id: i64) -> Result<Option<WfTask>, StoreError> {
    Ok(c.query_opt(
        concat!("SELECT ", task_cols!(), " FROM tasks WHERE id = $1"),
        &[&id],
    )?
    .map(|r| task_row(&r)))
}

impl PgStore {
    pub(crate) async fn wf_offer(&self, inputs: Vec<NewInput>) -> Result<usize, StoreError> {
        self.write(move |c, _| {
            let now = now_ms();
            let mut added = 0;
            for i in &inputs {
                added += usize::from(offer(c, i, now)?);
            }
            Ok(added)
        })
        .await
    }

    pub(crate) async fn wf_fire_timers(&self, now: i64, limit: u32) -> Result<usize, StoreError> {
        self.write(move |c, _| {
            // Deleting and queueing the input in the transaction that holds the writer
            // lock: a timer fires once, whichever instance fires it.
            let due = c.query(
                "DELETE FROM timers WHERE (workflow, name) IN
                   (SELECT workflow, name FROM timers WHERE due_at <= $1 ORDER BY due_at LIMIT $2)
                 RETURNING workflow, name, due_at",
                &[&now, &i64::from(limit)],
            )?;
            for r in &due {
                let (wf, name, due_at): (String, String, i64) = (r.get(0), r.get(1), r.get(2));
                let body = serde_json::json!({"timer": name, "due_at": due_at}).to_string();
                c.exec(
                    "INSERT INTO workflow_inputs (workflow, kind, key, body, created_at) VALUES ($1, 'timer', $2, $3, $4)
                     ON CONFLICT (workflow, key) DO NOTHING",
                    &[&wf, &format!("timer:{name}:{due_at}"), &body, &now],
                )?;
            }
            Ok(due.len())
        })
        .await
    }

    pub(crate) async fn wf_runnable(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        self.read(move |c| {
            let limit = i64::from(limit);
            let (inputs, retry) = c.query_both(
                (
                    "SELECT workflow FROM workflow_inputs WHERE done_at IS NULL GROUP BY workflow ORDER BY min(id) LIMIT $1",
                    &[&limit],
                ),
                (
                    "SELECT id FROM workflows WHERE retry_at IS NOT NULL AND retry_at <= $1 ORDER BY retry_at LIMIT $2",
                    &[&now, &limit],
                ),
            )?;
            let mut ids: Vec<String> = inputs.iter().map(|r| r.get(0)).collect();
            for r in &retry {
                let id: String = r.get(0);
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            Ok(ids)
        })
        .await
    }

    pub(crate) async fn wf_load(
        &self,
        id: &str,
    ) -> Result<Option<(WfRecord, Option<WfInput>)>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| {
            let (rec, input) = c.query_both(
                (
                    concat!("SELECT ", wf_cols!(), " FROM workflows WHERE id = $1"),
                    &[&id],
                ),
                (
                    "SELECT id, workflow, kind, key, body, created_at FROM workflow_inputs
                     WHERE workflow = $1 AND done_at IS NULL ORDER BY id LIMIT 1",
                    &[&id],
                ),
            )?;
            let Some(rec) = rec.first().map(wf_row) else {
                return Ok(None);
            };
            let input = input.first().map(|r| WfInput {
                id: r.get(0),
                workflow: r.get(1),
                kind: r.get(2),
                key: r.get(3),
                body: r.get(4),
                created_at: r.get(5),
            });
            Ok(Some((rec, input)))
        })
        .await
    }

    pub(crate) async fn wf_save(&self, save: WfSave) -> Result<Vec<i64>, StoreError> {
        self.write(move |c, _| {
            let now = now_ms();
            let s = &save;
            let entity = c.query_opt(
                "UPDATE workflows SET status = $1, stage = $2, state = $3, pending = $4, retry_at = $5,
                 version = version + 1, updated_at = $6 WHERE id = $7 AND version = $8 RETURNING entity",
                &[&s.status, &s.stage, &s.state, &s.pending, &s.retry_at, &now, &s.id, &s.expect_version],
            )?;
            let Some(entity) = entity.map(|r| r.get::<_, String>(0)) else {
                return Err(StoreError::Stale(s.id.clone()));
            };
            if let Some(input) = s.input_done {
                c.exec(
                    "UPDATE workflow_inputs SET done_at = $1 WHERE id = $2",
                    &[&now, &input],
                )?;
            }
            let mut n: i64 = c
                .query_opt(
                    "SELECT coalesce(max(n), 0)::BIGINT FROM workflow_steps WHERE workflow = $1",
                    &[&s.id],
                )?
                .map(|r| r.get(0))
                .unwrap_or(0);
            for st in &s.steps {
                n += 1;
                c.exec(
                    "INSERT INTO workflow_steps (workflow, n, step, input, answer, outcome, attempts, started_at, ended_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &[&s.id, &n, &st.step, &st.input, &st.answer, &st.outcome, &st.attempts, &st.started_at, &st.ended_at],
                )?;
            }
            for name in &s.cancel_timers {
                c.exec(
                    "DELETE FROM timers WHERE workflow = $1 AND name = $2",
                    &[&s.id, name],
                )?;
            }
            for (name, due) in &s.set_timers {
                c.exec(
                    "INSERT INTO timers (workflow, name, due_at) VALUES ($1, $2, $3)
                     ON CONFLICT (workflow, name) DO UPDATE SET due_at = excluded.due_at",
                    &[&s.id, name, due],
                )?;
            }
            for kind in &s.cancel_tasks {
                c.exec(
                    "UPDATE tasks SET status = 'cancelled', updated_at = $1
                     WHERE workflow = $2 AND status IN ('open', 'claimed') AND ($3 = '*' OR kind = $3)",
                    &[&now, &s.id, kind],
                )?;
            }
            let mut opened = Vec::new();
            for t in &s.open_tasks {
                let row = c.query_opt(
                    "INSERT INTO tasks (workflow, entity, kind, status, title, detail, created_at, updated_at)
                     VALUES ($1, $2, $3, 'open', $4, $5, $6, $6) RETURNING id",
                    &[&s.id, &entity, &t.kind, &t.title, &t.detail, &now],
                )?;
                opened.extend(row.map(|r| r.get::<_, i64>(0)));
            }
            for d in &s.documents {
                c.exec(
                    "INSERT INTO documents (workflow, name, mime, bytes) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (workflow, name) DO NOTHING",
                    &[&s.id, &d.name, &d.mime, &d.bytes],
                )?;
            }
            Ok(opened)
        })
        .await
    }

    pub(crate) async fn workflows(&self, q: WfQuery) -> Result<Vec<WfRecord>, StoreError> {
        self.read(move |c| {
            let limit = i64::from(q.limit.clamp(1, 1000));
            Ok(c
                .query(
                    concat!(
                        "SELECT ",
                        wf_cols!(),
                        " FROM workflows WHERE ($1::TEXT IS NULL OR entity = $1) AND ($2::TEXT IS NULL OR status = $2)
                         AND ($3::TEXT IS NULL OR kind = $3) AND ",
                        tenant_is!("workflows.entity", "$5::text"),
                        " ORDER BY id LIMIT $4"
                    ),
                    &[&q.entity, &q.status, &q.kind, &limit, &q.tenant],
                )?
                .iter()
                .map(wf_row)
                .collect())
        })
        .await
    }

    pub(crate) async fn workflow(
        &self,
        id: &str,
    ) -> Result<Option<(WfRecord, Vec<WfStep>, Vec<(String, i64)>)>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| {
            let Some(rec) = c
                .query_opt(
                    concat!("SELECT ", wf_cols!(), " FROM workflows WHERE id = $1"),
                    &[&id],
                )?
                .map(|r| wf_row(&r))
            else {
                return Ok(None);
            };
            let (steps, timers) = c.query_both(
                (
                    "SELECT n, step, input, answer, outcome, attempts, started_at, ended_at
                     FROM workflow_steps WHERE workflow = $1 ORDER BY n",
                    &[&id],
                ),
                (
                    "SELECT name, due_at FROM timers WHERE workflow = $1 ORDER BY due_at, name",
                    &[&id],
                ),
            )?;
            let steps = steps
                .iter()
                .map(|r| WfStep {
                    n: r.get(0),
                    step: r.get(1),
                    input: r.get(2),
                    answer: r.get(3),
                    outcome: r.get(4),
                    attempts: r.get(5),
                    started_at: r.get(6),
                    ended_at: r.get(7),
                })
                .collect();
            let timers = timers.iter().map(|r| (r.get(0), r.get(1))).collect();
            Ok(Some((rec, steps, timers)))
        })
        .await
    }

    pub(crate) async fn tasks(&self, q: TaskQuery) -> Result<Vec<WfTask>, StoreError> {
        self.read(move |c| {
            let limit = i64::from(q.limit.clamp(1, 1000));
            Ok(c
                .query(
                    concat!(
                        "SELECT ",
                        task_cols!(),
                        " FROM tasks WHERE ($1::TEXT IS NULL OR status = $1) AND ($2::TEXT IS NULL OR workflow = $2)
                         AND id > $3 AND ",
                        tenant_is!("tasks.entity", "$5::text"),
                        " ORDER BY id LIMIT $4"
                    ),
                    &[&q.status, &q.workflow, &q.after, &limit, &q.tenant],
                )?
                .iter()
                .map(task_row)
                .collect())
        })
        .await
    }

    pub(crate) async fn task_act(
        &self,
        id: i64,
        action: TaskAction,
    ) -> Result<Result<WfTask, TaskRefusal>, StoreError> {
        self.write(move |c, _| {
            let now = now_ms();
            let Some(task) = task_by_id(c, id)? else {
                return Ok(Err(TaskRefusal::NotFound));
            };
            match &action {
                TaskAction::Claim { by } => {
                    if !task.open_to(by) {
                        return Ok(Err(TaskRefusal::NotOpen(Box::new(task))));
                    }
                    c.exec(
                        "UPDATE tasks SET status = 'claimed', claimed_by = $1, updated_at = $2 WHERE id = $3",
                        &[by, &now, &id],
                    )?;
                }
                TaskAction::Resolve {
                    by,
                    decision,
                    reason,
                } => {
                    if !task.open_to(by) {
                        return Ok(Err(TaskRefusal::NotOpen(Box::new(task))));
                    }
                    c.exec(
                        "UPDATE tasks SET status = 'resolved', resolved_by = $1, decision = $2, reason = $3, updated_at = $4
                         WHERE id = $5",
                        &[by, decision, reason, &now, &id],
                    )?;
                    let body = task_input(&task, by, decision, reason.as_deref());
                    c.exec(
                        "INSERT INTO workflow_inputs (workflow, kind, key, body, created_at) VALUES ($1, 'task', $2, $3, $4)
                         ON CONFLICT (workflow, key) DO NOTHING",
                        &[&task.workflow, &format!("task:{id}"), &body, &now],
                    )?;
                }
            }
            Ok(task_by_id(c, id)?.ok_or(TaskRefusal::NotFound))
        })
        .await
    }

    pub(crate) async fn document(
        &self,
        workflow: &str,
        name: &str,
    ) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        let (wf, name) = (workflow.to_owned(), name.to_owned());
        self.read(move |c| {
            Ok(c.query_opt(
                "SELECT mime, bytes FROM documents WHERE workflow = $1 AND name = $2",
                &[&wf, &name],
            )?
            .map(|r| (r.get(0), r.get(1))))
        })
        .await
    }

    pub(crate) async fn wf_next_due(&self) -> Result<Option<i64>, StoreError> {
        self.read(|c| {
            Ok(c.query_opt("SELECT min(due_at) FROM timers", &[])?
                .and_then(|r| r.get::<_, Option<i64>>(0)))
        })
        .await
    }

    pub(crate) async fn wf_counts(&self) -> Result<WfCounts, StoreError> {
        self.read(|c| {
            let by_status = c
                .query(
                    "SELECT kind, status, count(*) FROM workflows GROUP BY kind, status",
                    &[],
                )?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get::<_, i64>(2)))
                .collect();
            let one = |c: &mut PgConn, sql: &'static str| -> Result<i64, StoreError> {
                Ok(c.query_opt(sql, &[])?.map(|r| r.get(0)).unwrap_or(0))
            };
            let tasks_open = one(
                c,
                "SELECT count(*) FROM tasks WHERE status IN ('open', 'claimed')",
            )?;
            let timers = one(c, "SELECT count(*) FROM timers")?;
            Ok(WfCounts {
                by_status,
                tasks_open,
                timers,
            })
        })
        .await
    }

    pub(crate) async fn timer_count(&self) -> Result<u64, StoreError> {
        self.read(|c| {
            let n: i64 = c
                .query_opt("SELECT count(*) FROM timers", &[])?
                .map(|r| r.get(0))
                .unwrap_or(0);
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }
}
