//! Workflow state on SQLite (see [`crate::flow`]).

use super::SqliteStore;
use crate::codec::now_ms;
use crate::flow::*;
use crate::StoreError;
use rusqlite::{params, Connection, OptionalExtension, Row};

const WF_COLS: &str =
    "id, kind, entity, status, stage, state, pending, retry_at, version, created_at, updated_at";
const TASK_COLS: &str = "id, workflow, entity, kind, status, title, detail, claimed_by, decision, resolved_by, reason, created_at, updated_at";

fn wf_row(r: &Row<'_>) -> rusqlite::Result<WfRecord> {
    Ok(WfRecord {
        id: r.get(0)?,
        kind: r.get(1)?,
        entity: r.get(2)?,
        status: r.get(3)?,
        stage: r.get(4)?,
        state: r.get(5)?,
        pending: r.get(6)?,
        retry_at: r.get(7)?,
        version: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
    })
}

fn task_row(r: &Row<'_>) -> rusqlite::Result<WfTask> {
    Ok(WfTask {
        id: r.get(0)?,
        workflow: r.get(1)?,
        entity: r.get(2)?,
        kind: r.get(3)?,
        status: r.get(4)?,
        title: r.get(5)?,
        detail: r.get(6)?,
        claimed_by: r.get(7)?,
        decision: r.get(8)?,
        resolved_by: r.get(9)?,
        reason: r.get(10)?,
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
    })
}

fn offer(c: &Connection, i: &NewInput, now: i64) -> Result<bool, StoreError> {
    c.prepare_cached(
        "INSERT INTO workflows (id, kind, entity, status, stage, state, pending, retry_at, version, created_at, updated_at)
         VALUES (?1, ?2, ?3, 'running', 'new', 'null', '[]', NULL, 0, ?4, ?4) ON CONFLICT (id) DO NOTHING",
    )?
    .execute(params![i.workflow, i.wf_kind, i.entity, now])?;
    let n = c
        .prepare_cached(
            "INSERT INTO workflow_inputs (workflow, kind, key, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (workflow, key) DO NOTHING",
        )?
        .execute(params![i.workflow, i.kind, i.key, i.body, now])?;
    Ok(n > 0)
}

fn task_by_id(c: &Connection, id: i64) -> Result<Option<WfTask>, StoreError> {
    Ok(
        c.prepare_cached(&format!("SELECT {TASK_COLS} FROM tasks WHERE id = ?1"))?
            .query_row([id], task_row)
            .optional()?,
    )
}

impl SqliteStore {
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
            let due: Vec<(String, String, i64)> = c
                .prepare_cached(
                    "SELECT workflow, name, due_at FROM timers WHERE due_at <= ?1 ORDER BY due_at LIMIT ?2",
                )?
                .query_map(params![now, limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            for (wf, name, due_at) in &due {
                c.prepare_cached("DELETE FROM timers WHERE workflow = ?1 AND name = ?2")?
                    .execute(params![wf, name])?;
                let body = serde_json::json!({"timer": name, "due_at": due_at}).to_string();
                c.prepare_cached(
                    "INSERT INTO workflow_inputs (workflow, kind, key, body, created_at) VALUES (?1, 'timer', ?2, ?3, ?4)
                     ON CONFLICT (workflow, key) DO NOTHING",
                )?
                .execute(params![wf, format!("timer:{name}:{due_at}"), body, now])?;
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
            let mut ids: Vec<String> = c
                .prepare_cached(
                    "SELECT workflow FROM workflow_inputs WHERE done_at IS NULL GROUP BY workflow ORDER BY min(id) LIMIT ?1",
                )?
                .query_map([limit], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let retry: Vec<String> = c
                .prepare_cached(
                    "SELECT id FROM workflows WHERE retry_at IS NOT NULL AND retry_at <= ?1 ORDER BY retry_at LIMIT ?2",
                )?
                .query_map(params![now, limit], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for id in retry {
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
            let Some(rec) = c
                .prepare_cached(&format!("SELECT {WF_COLS} FROM workflows WHERE id = ?1"))?
                .query_row([&id], wf_row)
                .optional()?
            else {
                return Ok(None);
            };
            let input = c
                .prepare_cached(
                    "SELECT id, workflow, kind, key, body, created_at FROM workflow_inputs
                     WHERE workflow = ?1 AND done_at IS NULL ORDER BY id LIMIT 1",
                )?
                .query_row([&id], |r| {
                    Ok(WfInput {
                        id: r.get(0)?,
                        workflow: r.get(1)?,
                        kind: r.get(2)?,
                        key: r.get(3)?,
                        body: r.get(4)?,
                        created_at: r.get(5)?,
                    })
                })
                .optional()?;
            Ok(Some((rec, input)))
        })
        .await
    }

    pub(crate) async fn wf_save(&self, save: WfSave) -> Result<Vec<i64>, StoreError> {
        self.write(move |c, _| {
            let now = now_ms();
            let s = &save;
            let changed = c
                .prepare_cached(
                    "UPDATE workflows SET status = ?1, stage = ?2, state = ?3, pending = ?4, retry_at = ?5,
                     version = version + 1, updated_at = ?6 WHERE id = ?7 AND version = ?8",
                )?
                .execute(params![
                    s.status, s.stage, s.state, s.pending, s.retry_at, now, s.id, s.expect_version
                ])?;
            if changed == 0 {
                return Err(StoreError::Stale(s.id.clone()));
            }
            if let Some(input) = s.input_done {
                c.prepare_cached("UPDATE workflow_inputs SET done_at = ?1 WHERE id = ?2")?
                    .execute(params![now, input])?;
            }
            let mut n: i64 = c
                .prepare_cached("SELECT coalesce(max(n), 0) FROM workflow_steps WHERE workflow = ?1")?
                .query_row([&s.id], |r| r.get(0))?;
            for st in &s.steps {
                n += 1;
                c.prepare_cached(
                    "INSERT INTO workflow_steps (workflow, n, step, input, answer, outcome, attempts, started_at, ended_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![
                    s.id, n, st.step, st.input, st.answer, st.outcome, st.attempts, st.started_at, st.ended_at
                ])?;
            }
            for name in &s.cancel_timers {
                c.prepare_cached("DELETE FROM timers WHERE workflow = ?1 AND name = ?2")?
                    .execute(params![s.id, name])?;
            }
            for (name, due) in &s.set_timers {
                c.prepare_cached(
                    "INSERT INTO timers (workflow, name, due_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (workflow, name) DO UPDATE SET due_at = excluded.due_at",
                )?
                .execute(params![s.id, name, due])?;
            }
            for kind in &s.cancel_tasks {
                c.prepare_cached(
                    "UPDATE tasks SET status = 'cancelled', updated_at = ?1
                     WHERE workflow = ?2 AND status IN ('open', 'claimed') AND (?3 = '*' OR kind = ?3)",
                )?
                .execute(params![now, s.id, kind])?;
            }
            let entity: String = c
                .prepare_cached("SELECT entity FROM workflows WHERE id = ?1")?
                .query_row([&s.id], |r| r.get(0))?;
            let mut opened = Vec::new();
            for t in &s.open_tasks {
                c.prepare_cached(
                    "INSERT INTO tasks (workflow, entity, kind, status, title, detail, created_at, updated_at)
                     VALUES (?1, ?2, ?3, 'open', ?4, ?5, ?6, ?6)",
                )?
                .execute(params![s.id, entity, t.kind, t.title, t.detail, now])?;
                opened.push(c.last_insert_rowid());
            }
            for d in &s.documents {
                c.prepare_cached(
                    "INSERT INTO documents (workflow, name, mime, bytes) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (workflow, name) DO NOTHING",
                )?
                .execute(params![s.id, d.name, d.mime, d.bytes])?;
            }
            Ok(opened)
        })
        .await
    }

    pub(crate) async fn workflows(&self, q: WfQuery) -> Result<Vec<WfRecord>, StoreError> {
        self.read(move |c| {
            let rows = c
                .prepare_cached(&format!(
                    "SELECT {WF_COLS} FROM workflows WHERE (?1 IS NULL OR entity = ?1) AND (?2 IS NULL OR status = ?2)
                     AND (?3 IS NULL OR kind = ?3) AND {} ORDER BY id LIMIT ?4",
                    tenant_is!("workflows.entity", "?5")
                ))?
                .query_map(
                    params![q.entity, q.status, q.kind, q.limit.clamp(1, 1000), q.tenant],
                    wf_row,
                )?
                .collect::<Result<_, _>>()?;
            Ok(rows)
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
                .prepare_cached(&format!("SELECT {WF_COLS} FROM workflows WHERE id = ?1"))?
                .query_row([&id], wf_row)
                .optional()?
            else {
                return Ok(None);
            };
            let steps = c
                .prepare_cached(
                    "SELECT n, step, input, answer, outcome, attempts, started_at, ended_at
                     FROM workflow_steps WHERE workflow = ?1 ORDER BY n",
                )?
                .query_map([&id], |r| {
                    Ok(WfStep {
                        n: r.get(0)?,
                        step: r.get(1)?,
                        input: r.get(2)?,
                        answer: r.get(3)?,
                        outcome: r.get(4)?,
                        attempts: r.get(5)?,
                        started_at: r.get(6)?,
                        ended_at: r.get(7)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            let timers = c
                .prepare_cached(
                    "SELECT name, due_at FROM timers WHERE workflow = ?1 ORDER BY due_at, name",
                )?
                .query_map([&id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            Ok(Some((rec, steps, timers)))
        })
        .await
    }

    pub(crate) async fn tasks(&self, q: TaskQuery) -> Result<Vec<WfTask>, StoreError> {
        self.read(move |c| {
            let rows = c
                .prepare_cached(&format!(
                    "SELECT {TASK_COLS} FROM tasks WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR workflow = ?2)
                     AND id > ?3 AND {} ORDER BY id LIMIT ?4",
                    tenant_is!("tasks.entity", "?5")
                ))?
                .query_map(
                    params![q.status, q.workflow, q.after, q.limit.clamp(1, 1000), q.tenant],
                    task_row,
                )?
                .collect::<Result<_, _>>()?;
            Ok(rows)
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
                    c.prepare_cached(
                        "UPDATE tasks SET status = 'claimed', claimed_by = ?1, updated_at = ?2 WHERE id = ?3",
                    )?
                    .execute(params![by, now, id])?;
                }
                TaskAction::Resolve {
                    by,
                    decision,
                    reason,
                } => {
                    if !task.open_to(by) {
                        return Ok(Err(TaskRefusal::NotOpen(Box::new(task))));
                    }
                    c.prepare_cached(
                        "UPDATE tasks SET status = 'resolved', resolved_by = ?1, decision = ?2, reason = ?3, updated_at = ?4
                         WHERE id = ?5",
                    )?
                    .execute(params![by, decision, reason, now, id])?;
                    let body = task_input(&task, by, decision, reason.as_deref());
                    c.prepare_cached(
                        "INSERT INTO workflow_inputs (workflow, kind, key, body, created_at) VALUES (?1, 'task', ?2, ?3, ?4)
                         ON CONFLICT (workflow, key) DO NOTHING",
                    )?
                    .execute(params![task.workflow, format!("task:{id}"), body, now])?;
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
            Ok(c.prepare_cached(
                "SELECT mime, bytes FROM documents WHERE workflow = ?1 AND name = ?2",
            )?
            .query_row([&wf, &name], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
        })
        .await
    }

    pub(crate) async fn wf_next_due(&self) -> Result<Option<i64>, StoreError> {
        self.read(|c| {
            Ok(c.prepare_cached("SELECT min(due_at) FROM timers")?
                .query_row([], |r| r.get::<_, Option<i64>>(0))?)
        })
        .await
    }

    pub(crate) async fn wf_counts(&self) -> Result<WfCounts, StoreError> {
        self.read(|c| {
            let by_status = c
                .prepare_cached(
                    "SELECT kind, status, count(*) FROM workflows GROUP BY kind, status",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?)))?
                .collect::<Result<Vec<(String, String, i64)>, _>>()?;
            let tasks_open: i64 = c
                .prepare_cached("SELECT count(*) FROM tasks WHERE status IN ('open', 'claimed')")?
                .query_row([], |r| r.get(0))?;
            let timers: i64 = c
                .prepare_cached("SELECT count(*) FROM timers")?
                .query_row([], |r| r.get(0))?;
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
            let n: i64 = c.query_row("SELECT count(*) FROM timers", [], |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }
}
