//! The control plane's I/O on the coordinator thread: the view loop (one
//! pass per tick: rebuild and publish the view when the tree moved, then,
//! on the broker whose session holds `/controller`, write the
//! controller's decisions), leaders' ISR proposals and controlled
//! shutdowns.
//!
//! Fencing: a controller reads `/controller_epoch`'s version when it
//! finds itself holding `/controller` (it wrote both in one `multi`), and
//! every state write is `multi[Check(/controller_epoch, that version),
//! SetData(state, expected version)]`. A deposed controller's `Check`
//! fails; a version conflict means someone else (a leader's ISR change)
//! wrote first: the next view shows it and the controller decides again.

use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringtail_coordinator::ids::SessionId;
use ringtail_coordinator::kafka;
use ringtail_coordinator::txn::{CreateMode, ErrorCode, OpResult, WriteOp};
use ringtail_io::rt::time::sleep;

use super::decide::{decide, shutdown_pending, StateChange};
use super::view::{self, ClusterView, CONTROLLED_SHUTDOWN};
use super::{IsrOutcome, IsrProposal, Published};
use crate::coordinator::jobs::Ctx;
use crate::coordinator::topics::{parse_state, state_json, StateJson};
use crate::replication::election::{write_isr, IsrWrite, PartitionState};
use crate::replication::{LeaderEpoch, NodeId, PartitionVersion};

/// The controller's settings (`server.properties`).
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// `unclean.leader.election.enable`.
    pub unclean: bool,
    /// `auto.leader.rebalance.enable`.
    pub rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`, in ms.
    pub rebalance_interval_ms: u64,
}

/// How long one pass waits between checks.
const TICK: Duration = Duration::from_millis(crate::coordinator::TICK_MS);
/// How long an ISR proposal may wait for the ensemble.
const PROPOSE_WAIT: Duration = Duration::from_secs(10);

/// This broker's time as controller: the `/controller` node it holds and
/// the `/controller_epoch` it fences its writes with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Term {
    session: SessionId,
    controller_czxid: u64,
    epoch: i64,
    epoch_version: i32,
}

/// The loop (see the module doc). Ends when `stop` is set.
pub(crate) async fn run(
    ctx: Rc<Ctx>,
    published: Arc<Published>,
    settings: Settings,
    stop: Arc<AtomicBool>,
) {
    let mut last_zxid = -1i64;
    let mut skipped_before = BTreeSet::new();
    let mut term: Option<Term> = None;
    let mut next_rebalance = Instant::now() + Duration::from_millis(settings.rebalance_interval_ms);
    let mut next_pass = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let zxid = ctx.with_tree(|t| t.last_zxid().0 as i64);
        if zxid != last_zxid {
            last_zxid = zxid;
            let previous = published.view().load_full();
            let (v, skipped) = ctx.with_tree(|t| view::build(t, Some(&previous)));
            let skipped: BTreeSet<String> = skipped.into_iter().collect();
            for s in skipped.difference(&skipped_before) {
                eprintln!("controller: skipping unreadable {s}");
            }
            skipped_before = skipped;
            published.publish(Arc::new(v));
        }
        term = current_term(&ctx, term);
        if let Some(t) = term.filter(|_| Instant::now() >= next_pass) {
            let due = settings.rebalance && Instant::now() >= next_rebalance;
            if due {
                next_rebalance =
                    Instant::now() + Duration::from_millis(settings.rebalance_interval_ms);
            }
            let view = published.view().load_full();
            match act(&ctx, t, &view, due, settings.unclean).await {
                Pass::Done => {}
                Pass::Failed => next_pass = Instant::now() + RETRY_AFTER,
                Pass::Deposed => {
                    eprintln!(
                        "controller: deposed (controller epoch {} is no longer current)",
                        t.epoch
                    );
                    term = None;
                }
            }
        }
        sleep(TICK).await;
    }
}

/// The term when this broker's session holds `/controller` and the peer
/// serves; a new term reads `/controller_epoch`.
fn current_term(ctx: &Ctx, term: Option<Term>) -> Option<Term> {
    let session = ctx.session.get()?;
    if !ctx.serving() {
        return None;
    }
    let stat = ctx.with_tree(|t| t.stat(kafka::CONTROLLER))?;
    if stat.ephemeral_owner != Some(session) {
        return None;
    }
    if let Some(t) = term {
        if t.session == session && t.controller_czxid == stat.czxid.0 {
            return Some(t);
        }
    }
    let (data, epoch_stat) = ctx.get(kafka::CONTROLLER_EPOCH)?;
    let epoch: i64 = std::str::from_utf8(&data).ok()?.trim().parse().ok()?;
    eprintln!("controller: acting as the controller in epoch {epoch}");
    Some(Term {
        session,
        controller_czxid: stat.czxid.0,
        epoch,
        epoch_version: epoch_stat.version,
    })
}

/// Writes at once at most this many changes (the ensemble batches them).
const WRITES_IN_FLIGHT_MAX: usize = 512;

/// How one pass of writes went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    Done,
    /// Some writes failed (no quorum, say): retry after [`RETRY_AFTER`].
    Failed,
    /// `/controller_epoch` moved on: this controller was deposed.
    Deposed,
}

/// How long a controller waits after a pass whose writes failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Writes `view`'s decisions, many at a time.
async fn act(
    ctx: &Rc<Ctx>,
    term: Term,
    view: &ClusterView,
    rebalance_due: bool,
    unclean: bool,
) -> Pass {
    let changes = decide(view, rebalance_due, unclean);
    for chunk in changes.chunks(WRITES_IN_FLIGHT_MAX) {
        let writes: Vec<_> = chunk
            .iter()
            .map(|c| {
                let (ctx, c) = (ctx.clone(), c.clone());
                ringtail_io::rt::spawn(async move { write_change(&ctx, term, &c).await })
            })
            .collect();
        let mut deposed = false;
        let (mut failed, mut first_failure) = (0usize, None);
        for (change, write) in chunk.iter().zip(writes) {
            match write.await {
                Ok(_) => eprintln!("controller: {change}"),
                Err((0, _)) => deposed = true,
                // A leader's ISR write came first: decide again from the
                // next view.
                Err((1, ErrorCode::BadVersion | ErrorCode::NoNode)) => {}
                Err((i, code)) => {
                    failed += 1;
                    first_failure.get_or_insert(format!("{change}: op {i}: {code}"));
                }
            }
        }
        if deposed {
            return Pass::Deposed;
        }
        // One line per pass: without a quorum every write fails alike.
        if let Some(first) = first_failure {
            eprintln!("controller: {failed} state writes failed, the first: {first}");
            return Pass::Failed;
        }
    }
    Pass::Done
}

async fn write_change(
    ctx: &Ctx,
    term: Term,
    c: &StateChange,
) -> Result<Vec<OpResult>, (usize, ErrorCode)> {
    let state = StateJson {
        controller_epoch: term.epoch,
        leader: c.leader,
        leader_epoch: c.leader_epoch,
        isr: c.isr.clone(),
    };
    let ops = vec![
        WriteOp::Check {
            path: kafka::CONTROLLER_EPOCH.to_string(),
            version: term.epoch_version,
        },
        WriteOp::SetData {
            path: kafka::partition_state(&c.topic, c.partition as u32),
            data: state_json(&state).into_bytes(),
            version: c.expected_version,
        },
    ];
    ctx.multi(term.session, ops).await
}

/// The state node as `write_isr` sees it, with its controller epoch.
fn read_state(ctx: &Ctx, path: &str) -> Result<(PartitionState, i64), String> {
    let (data, stat) = ctx
        .get(path)
        .ok_or_else(|| format!("{path} does not exist"))?;
    let s = parse_state(&data).map_err(|e| format!("{path}: {e}"))?;
    let state = PartitionState {
        leader: (s.leader >= 0).then_some(NodeId(s.leader)),
        leader_epoch: LeaderEpoch(s.leader_epoch),
        isr: s.isr.iter().map(|&b| NodeId(b)).collect(),
        version: PartitionVersion(stat.version),
    };
    Ok((state, s.controller_epoch))
}

fn rejected(s: &PartitionState) -> IsrOutcome {
    IsrOutcome::Rejected {
        leader: s.leader.map_or(-1, |n| n.0),
        leader_epoch: s.leader_epoch.0,
        isr: s.isr.iter().map(|n| n.0).collect(),
        version: s.version.0,
    }
}

/// A leader's ISR proposal (see [`super::IsrWriter::propose`]).
pub(crate) async fn propose_isr(ctx: &Ctx, p: IsrProposal) -> Result<IsrOutcome, String> {
    let deadline = Instant::now() + PROPOSE_WAIT;
    let path = kafka::partition_state(&p.topic, p.partition.max(0) as u32);
    let isr: Vec<NodeId> = p.isr.iter().map(|&b| NodeId(b)).collect();
    // A lost race with the controller is answered with the state that won;
    // the retry exists for a write that raced a stale local read.
    for _ in 0..3 {
        ctx.synced(deadline).await?;
        let session = ctx.session(deadline).await?;
        let (current, controller_epoch) = read_state(ctx, &path)?;
        let shutting: BTreeSet<i32> = ctx
            .children(CONTROLLED_SHUTDOWN)
            .iter()
            .filter_map(|c| c.parse().ok())
            .collect();
        let registered = |n: NodeId, epoch: i64| {
            !shutting.contains(&n.0)
                && ctx
                    .get(&kafka::broker_id(n.0 as u32))
                    .is_some_and(|(_, st)| st.czxid.0 as i64 == epoch)
        };
        let decision = write_isr(
            &current,
            NodeId(p.leader),
            LeaderEpoch(p.leader_epoch),
            &isr,
            PartitionVersion(p.expected_version),
            p.joining.map(|(b, e)| (NodeId(b), e)),
            registered,
        );
        let (next, applied) = match decision {
            IsrWrite::AlreadyApplied(s) => {
                return Ok(IsrOutcome::Committed {
                    version: s.version.0,
                })
            }
            IsrWrite::Conflict(s) => return Ok(rejected(&s)),
            IsrWrite::Applied(s) => (s, true),
            IsrWrite::Ineligible(s) => (s, false),
        };
        let state = StateJson {
            controller_epoch,
            leader: next.leader.map_or(-1, |n| n.0),
            leader_epoch: next.leader_epoch.0,
            isr: next.isr.iter().map(|n| n.0).collect(),
        };
        let op = WriteOp::SetData {
            path: path.clone(),
            data: state_json(&state).into_bytes(),
            version: current.version.0,
        };
        match ctx.multi(session, vec![op]).await {
            Ok(results) => {
                let version = match results.first() {
                    Some(OpResult::SetData { version }) => *version,
                    _ => next.version.0,
                };
                let now = PartitionState {
                    version: PartitionVersion(version),
                    ..next
                };
                if applied {
                    return Ok(IsrOutcome::Committed { version });
                }
                eprintln!(
                    "controller: {}-{}: refused ISR {:?} from leader {}: joining replica {:?} is not registered in that broker epoch",
                    p.topic, p.partition, p.isr, p.leader, p.joining
                );
                return Ok(rejected(&now));
            }
            Err((0, ErrorCode::BadVersion)) => continue,
            Err((i, code)) => return Err(format!("{path}: ISR write failed at op {i}: {code}")),
        }
    }
    let (current, _) = read_state(ctx, &path)?;
    Ok(rejected(&current))
}

/// Asks the controller to move this broker's leaderships away (see
/// [`crate::coordinator::Coordinator::controlled_shutdown`]).
pub(crate) async fn controlled_shutdown(ctx: &Ctx, me: i32, wait: Duration) -> Result<(), String> {
    let deadline = Instant::now() + wait;
    ctx.synced(deadline).await?;
    let session = ctx.session(deadline).await?;
    let create = |path: String, mode| WriteOp::Create {
        path,
        data: Vec::new(),
        mode,
    };
    for (path, mode) in [
        (CONTROLLED_SHUTDOWN.to_string(), CreateMode::Persistent),
        (view::controlled_shutdown_marker(me), CreateMode::Ephemeral),
    ] {
        match ctx.multi(session, vec![create(path.clone(), mode)]).await {
            Ok(_) | Err((0, ErrorCode::NodeExists)) => {}
            Err((i, code)) => return Err(format!("{path}: create failed at op {i}: {code}")),
        }
    }
    eprintln!("controller: broker {me} asked for a controlled shutdown");
    loop {
        let (view, _) = ctx.with_tree(|t| view::build(t, None));
        let left = shutdown_pending(&view, me);
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "after {wait:?} broker {me} still leads or is in the ISR of {} partitions another broker could lead: {}",
                left.len(),
                left.join(", ")
            ));
        }
        sleep(TICK).await;
    }
}
