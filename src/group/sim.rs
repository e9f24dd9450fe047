//! Deterministic simulation of one group with 3-6 clients on a virtual
//! clock: joins (with and without MEMBER_ID_REQUIRED, static and
//! dynamic), syncs, heartbeats, commits, leaves, stalls past the session
//! timeout, crashes and restarts, and zombie requests from dead
//! incarnations, with durability acknowledged after random delays, and
//! broker restarts that replay the records written so far.
//! Invariants are checked after every step; a failure names its seed.
//!
//! - `RINGTAIL_GROUP_SIM_SEEDS=N` runs N seeds (default 2,000).
//! - `RINGTAIL_GROUP_SIM_SEED=S` replays seed S alone;
//!   `RINGTAIL_GROUP_SIM_TRACE=1` prints every output and the group.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use bytes::Bytes;

use super::*;
use crate::group::records::Record;
use crate::sim_rng::Rng;

const PARTITIONS: u8 = 6;
const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 8_000;
const STEPS: usize = 400;
const GROUP: &str = "g";
const TOPIC: &str = "t";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Must (re)join with `member_id` (possibly empty).
    Out,
    Joining,
    /// Has a join answer; must sync.
    MustSync,
    Syncing,
    Stable,
    /// Crashed or left; comes back at `resume_ms` as a new incarnation.
    Down,
    /// Stalled (a long GC pause): resumes with its old state.
    Stalled,
}

#[derive(Debug)]
struct Client {
    name: String,
    instance: Option<String>,
    v4: bool,
    member_id: String,
    generation: i32,
    leader: bool,
    members_for_assign: Vec<String>,
    phase: Phase,
    waiting: Option<ReplyTo>,
    next_heartbeat_ms: i64,
    resume_ms: i64,
    /// False once it stalled past its session: it may lose its id.
    diligent: bool,
    incarnation: u32,
}

/// An id a dead incarnation held: it may still send requests.
#[derive(Debug, Clone)]
struct Zombie {
    member_id: String,
    instance: Option<String>,
    generation: i32,
}

struct Sim {
    rng: Rng,
    seed: u64,
    now: i64,
    core: Coordinator,
    clients: Vec<Client>,
    /// reply token -> (client, incarnation, what)
    inflight: HashMap<ReplyTo, (usize, u32, &'static str)>,
    next_reply: ReplyTo,
    /// Persist tokens waiting to be made durable, in append order.
    disk: VecDeque<(u64, i64)>,
    /// Leader assignments per generation: member id -> partitions.
    assigned: BTreeMap<i32, BTreeMap<String, Bytes>>,
    /// Members each generation's leader was told about.
    generation_members: BTreeMap<i32, BTreeSet<String>>,
    /// Static member ids replaced by a newer id for the same instance.
    aliases: HashMap<String, String>,
    zombies: Vec<Zombie>,
    /// Commits acknowledged: the model of committed offsets.
    committed: BTreeMap<i32, i64>,
    /// Commit replies expected: token -> (partition, offset).
    commits: HashMap<ReplyTo, Vec<(i32, i64)>>,
    highest_generation: i32,
    /// `RINGTAIL_GROUP_SIM_TRACE`: print every output.
    trace: bool,
    /// Every record appended to `__consumer_offsets`, in order.
    log: Vec<Record>,
    /// Persist token -> the commit request it answers.
    persist_reply: HashMap<u64, ReplyTo>,
}

impl Sim {
    fn fail(&self, what: &str) -> ! {
        panic!(
            "group sim seed {} at t={} ms: {what}\n(replay with RINGTAIL_GROUP_SIM_SEED={})",
            self.seed, self.now, self.seed
        )
    }

    fn settled(&self) -> bool {
        self.group().is_some_and(|g| {
            g.state == GroupState::Stable
                && g.members().count() == self.clients.len()
                && self.clients.iter().all(|c| c.phase == Phase::Stable)
        })
    }

    /// A member id and the ids it replaced (static members).
    fn known_as(&self, id: &str) -> Vec<String> {
        let mut ids = vec![id.to_string()];
        while let Some(old) = self.aliases.get(ids.last().expect("non-empty")) {
            ids.push(old.clone());
        }
        ids
    }

    fn group(&self) -> Option<&Group> {
        self.core.group(GROUP)
    }

    fn token(&mut self, client: usize, what: &'static str) -> ReplyTo {
        let t = self.next_reply;
        self.next_reply += 1;
        self.inflight
            .insert(t, (client, self.clients[client].incarnation, what));
        t
    }

    fn join_request(&self, c: &Client) -> JoinRequest {
        let topics = format!("sub:{TOPIC}");
        JoinRequest {
            group_id: GROUP.into(),
            member_id: c.member_id.clone(),
            group_instance_id: c.instance.clone(),
            client_id: c.name.clone(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: REBALANCE_MS,
            protocol_type: "consumer".into(),
            protocols: vec![
                ("range".into(), Bytes::from(topics.clone())),
                ("roundrobin".into(), Bytes::from(topics)),
            ],
            require_known_member_id: c.v4,
        }
    }

    /// Range assignment of the partitions over the sorted member ids.
    fn assign(members: &[String]) -> Vec<(String, Bytes)> {
        let mut ids = members.to_vec();
        ids.sort();
        let n = ids.len() as u8;
        let (per, extra) = (PARTITIONS / n, PARTITIONS % n);
        let mut next = 0u8;
        ids.into_iter()
            .enumerate()
            .map(|(i, id)| {
                let count = per + u8::from((i as u8) < extra);
                let parts: Vec<u8> = (next..next + count).collect();
                next += count;
                (id, Bytes::from(parts))
            })
            .collect()
    }

    fn act(&mut self, i: usize) {
        let now = self.now;
        let phase = self.clients[i].phase;
        match phase {
            Phase::Down | Phase::Stalled => {
                if now >= self.clients[i].resume_ms {
                    let c = &mut self.clients[i];
                    c.phase = if phase == Phase::Down {
                        c.incarnation += 1;
                        c.member_id.clear();
                        c.diligent = true;
                        Phase::Out
                    } else {
                        // Resumes where it was, heartbeating its old id.
                        Phase::Stable
                    };
                    c.next_heartbeat_ms = now;
                }
            }
            Phase::Out => {
                let req = self.join_request(&self.clients[i]);
                let t = self.token(i, "join");
                self.clients[i].phase = Phase::Joining;
                self.clients[i].waiting = Some(t);
                let instance = req.group_instance_id.clone();
                let replaced = |g: Option<&Group>| {
                    let g = g?;
                    let id = g.static_members.get(instance.as_deref()?)?.clone();
                    Some((g.state, g.generation_id, id))
                };
                let before = replaced(self.group());
                self.core.join(now, t, req);
                // A static member replaced in a Stable group keeps the
                // assignment the leader gave its old id.
                if let (Some((GroupState::Stable, g0, old)), Some((GroupState::Stable, g1, new))) =
                    (before, replaced(self.group()))
                {
                    if g0 == g1 && old != new {
                        self.aliases.insert(new, old);
                    }
                }
            }
            Phase::MustSync => {
                let c = &self.clients[i];
                let assignments = if c.leader {
                    Self::assign(&c.members_for_assign)
                } else {
                    Vec::new()
                };
                let req = SyncRequest {
                    group_id: GROUP.into(),
                    generation_id: c.generation,
                    member_id: c.member_id.clone(),
                    group_instance_id: c.instance.clone(),
                    protocol_type: Some("consumer".into()),
                    protocol_name: None,
                    assignments: assignments.clone(),
                };
                let leader_sync_accepted = c.leader
                    && self.group().is_some_and(|g| {
                        g.state == GroupState::CompletingRebalance
                            && g.generation_id == c.generation
                            && g.leader_id.as_deref() == Some(c.member_id.as_str())
                    });
                if leader_sync_accepted {
                    self.assigned
                        .insert(c.generation, assignments.into_iter().collect());
                }
                let t = self.token(i, "sync");
                self.clients[i].phase = Phase::Syncing;
                self.clients[i].waiting = Some(t);
                self.core.sync(now, t, req);
            }
            Phase::Stable => self.act_stable(i),
            Phase::Joining | Phase::Syncing => {}
        }
    }

    fn act_stable(&mut self, i: usize) {
        let now = self.now;
        if self.rng.chance(15, 100) {
            self.commit(i);
        }
        let c = &self.clients[i];
        if now < c.next_heartbeat_ms {
            return;
        }
        let (member, instance, generation) =
            (c.member_id.clone(), c.instance.clone(), c.generation);
        let r = self
            .core
            .heartbeat(now, GROUP, &member, instance.as_deref(), generation);
        let c = &mut self.clients[i];
        c.next_heartbeat_ms = now + 1_000 + (self.rng.below(2_000) as i64);
        match r {
            Ok(()) => {}
            Err(GroupError::RebalanceInProgress) | Err(GroupError::IllegalGeneration) => {
                c.phase = Phase::Out;
            }
            Err(GroupError::UnknownMemberId) if !c.diligent => {
                c.member_id.clear();
                c.phase = Phase::Out;
            }
            Err(e) => {
                let name = c.name.clone();
                self.fail(&format!("{name} heartbeat for {member} got {e:?}"))
            }
        }
    }

    fn commit(&mut self, i: usize) {
        let c = &self.clients[i];
        let partition = self.rng.below(u64::from(PARTITIONS)) as i32;
        let offset = self.rng.below(1_000) as i64;
        let req = CommitRequest {
            group_id: GROUP.into(),
            generation_id: c.generation,
            member_id: c.member_id.clone(),
            group_instance_id: c.instance.clone(),
            offsets: vec![(
                (TOPIC.to_string(), partition),
                OffsetAndMetadata {
                    offset,
                    leader_epoch: -1,
                    metadata: format!("m{offset}"),
                    commit_timestamp_ms: self.now,
                },
            )],
        };
        self.send_commit(Some(i), req, vec![(partition, offset)]);
    }

    fn send_commit(&mut self, client: Option<usize>, req: CommitRequest, what: Vec<(i32, i64)>) {
        let before = self.group().map(|g| {
            (
                g.generation_id,
                g.state,
                g.has_member(&req.member_id),
                g.static_fenced(req.group_instance_id.as_deref(), &req.member_id),
            )
        });
        let t = match client {
            Some(i) => self.token(i, "commit"),
            None => {
                let t = self.next_reply;
                self.next_reply += 1;
                t
            }
        };
        self.commits.insert(t, what);
        let simple = req.generation_id < 0;
        let generation = req.generation_id;
        self.core.commit(self.now, t, req);
        let outputs = self.core.drain();
        let mut accepted = false;
        for o in &outputs {
            if let Output::Persist { token: Some(p), .. } = o {
                self.persist_reply.insert(*p, t);
                accepted = true;
            }
        }
        if accepted {
            let ok = match before {
                None => simple,
                Some((g, state, member, fenced)) => {
                    if fenced {
                        false
                    } else if simple && state == GroupState::Empty {
                        true
                    } else {
                        g == generation
                            && member
                            && !fenced
                            && state != GroupState::CompletingRebalance
                    }
                }
            };
            if !ok {
                self.fail(&format!(
                    "a commit for generation {generation} was accepted in {before:?}"
                ));
            }
        }
        self.route(outputs);
    }

    /// A request from a dead incarnation's id: never accepted once the id
    /// is gone, FENCED_INSTANCE_ID where its instance moved on.
    fn zombie(&mut self) {
        if self.zombies.is_empty() {
            return;
        }
        let z = self.zombies[self.rng.below(self.zombies.len() as u64) as usize].clone();
        let Some(group) = self.group() else { return };
        let in_group = group.has_member(&z.member_id);
        let fenced = group.static_fenced(z.instance.as_deref(), &z.member_id);
        let r = self.core.heartbeat(
            self.now,
            GROUP,
            &z.member_id,
            z.instance.as_deref(),
            z.generation,
        );
        if fenced && r != Err(GroupError::FencedInstanceId) {
            self.fail(&format!("zombie {z:?} heartbeat got {r:?}, not fenced"));
        }
        if !in_group && r.is_ok() {
            self.fail(&format!("zombie {z:?} heartbeat accepted"));
        }
        let outputs = self.core.drain();
        self.route(outputs);
    }

    fn route(&mut self, outputs: Vec<Output>) {
        for o in outputs {
            if self.trace {
                let g = self.group().map(|g| {
                    (
                        g.state,
                        g.generation_id,
                        g.leader_id.clone(),
                        g.members.keys().cloned().collect::<Vec<_>>(),
                    )
                });
                eprintln!("t={} {o:?}\n   group {g:?}", self.now);
            }
            match o {
                Output::Persist { token, records, .. } => {
                    self.log.extend(records);
                    if let Some(t) = token {
                        let delay = self.rng.below(400) as i64;
                        let due = self
                            .disk
                            .back()
                            .map_or(0, |(_, d)| *d)
                            .max(self.now + delay);
                        self.disk.push_back((t, due));
                    }
                }
                Output::Join(to, r) => self.on_join(to, r),
                Output::Sync(to, r) => self.on_sync(to, r),
                Output::Commit(to, r) => self.on_commit(to, r),
            }
        }
    }

    fn live_client(&mut self, to: ReplyTo) -> Option<usize> {
        let (i, incarnation, _) = self.inflight.remove(&to)?;
        let c = &mut self.clients[i];
        if c.incarnation != incarnation || c.waiting != Some(to) {
            return None;
        }
        c.waiting = None;
        Some(i)
    }

    fn on_join(&mut self, to: ReplyTo, r: JoinResult) {
        if r.error.is_none() {
            let g = self.group().expect("a group answered");
            if r.generation_id != g.generation_id {
                self.fail(&format!(
                    "join answered with generation {} while the group has {}",
                    r.generation_id, g.generation_id
                ));
            }
            if r.generation_id < self.highest_generation {
                self.fail("generation went backwards");
            }
            self.highest_generation = r.generation_id;
            if !r.members.is_empty() {
                let ids: BTreeSet<String> = r.members.iter().map(|m| m.member_id.clone()).collect();
                if let Some(prev) = self.generation_members.get(&r.generation_id) {
                    if *prev != ids {
                        self.fail("two member lists for one generation");
                    }
                }
                self.generation_members.insert(r.generation_id, ids);
            }
        }
        let Some(i) = self.live_client(to) else {
            return;
        };
        let c = &mut self.clients[i];
        match r.error {
            None => {
                c.member_id = r.member_id.clone();
                c.generation = r.generation_id;
                c.leader = r.leader == r.member_id && !r.skip_assignment;
                c.members_for_assign = r.members.iter().map(|m| m.member_id.clone()).collect();
                c.phase = Phase::MustSync;
            }
            Some(GroupError::MemberIdRequired) => {
                c.member_id = r.member_id;
                c.phase = Phase::Out;
            }
            Some(GroupError::RebalanceInProgress) => c.phase = Phase::Out,
            Some(GroupError::UnknownMemberId) if !c.diligent => {
                c.member_id.clear();
                c.phase = Phase::Out;
            }
            Some(e) => {
                let name = c.name.clone();
                self.fail(&format!("{name} join got {e:?}"))
            }
        }
    }

    fn on_sync(&mut self, to: ReplyTo, r: SyncResult) {
        let Some(i) = self.live_client(to) else {
            return;
        };
        let c = &self.clients[i];
        match r.error {
            None => {
                let expected = self
                    .assigned
                    .get(&c.generation)
                    .and_then(|a| self.known_as(&c.member_id).iter().find_map(|id| a.get(id)))
                    .cloned()
                    .unwrap_or_default();
                if r.assignment != expected {
                    self.fail(&format!(
                        "{} got assignment {:?} in generation {}, the leader gave {expected:?}",
                        c.name, r.assignment, c.generation
                    ));
                }
                let c = &mut self.clients[i];
                c.phase = Phase::Stable;
                c.next_heartbeat_ms = self.now + 1_000;
            }
            Some(GroupError::RebalanceInProgress) | Some(GroupError::IllegalGeneration) => {
                self.clients[i].phase = Phase::Out;
            }
            Some(GroupError::UnknownMemberId) if !c.diligent => {
                let c = &mut self.clients[i];
                c.member_id.clear();
                c.phase = Phase::Out;
            }
            Some(e) => self.fail(&format!("{} sync got {e:?}", c.name)),
        }
    }

    fn on_commit(&mut self, to: ReplyTo, r: CommitResult) {
        let what = self.commits.remove(&to).unwrap_or_default();
        self.inflight.remove(&to);
        for (((_, p), result), (_, offset)) in r.iter().zip(what) {
            if result.is_ok() {
                self.committed.insert(*p, offset);
            }
        }
    }

    fn chaos(&mut self) {
        let n = self.clients.len();
        let i = self.rng.below(n as u64) as usize;
        let now = self.now;
        let roll = self.rng.below(1_000);
        let phase = self.clients[i].phase;
        if matches!(phase, Phase::Down | Phase::Stalled) {
            return;
        }
        if roll < 4 {
            // Crash: the id lives on as a zombie until it expires.
            let c = &mut self.clients[i];
            if !c.member_id.is_empty() {
                self.zombies.push(Zombie {
                    member_id: c.member_id.clone(),
                    instance: c.instance.clone(),
                    generation: c.generation,
                });
            }
            c.phase = Phase::Down;
            c.waiting = None;
            c.resume_ms = now + self.rng.below(20_000) as i64;
        } else if roll < 7 && phase == Phase::Stable {
            // Clean leave, back later as a new member.
            let c = &mut self.clients[i];
            let diligent = c.diligent;
            let leaving = vec![(c.member_id.clone(), c.instance.clone())];
            self.zombies.push(Zombie {
                member_id: c.member_id.clone(),
                instance: c.instance.clone(),
                generation: c.generation,
            });
            c.phase = Phase::Down;
            c.resume_ms = now + self.rng.below(5_000) as i64;
            let r = self.core.leave(now, GROUP, &leaving);
            if diligent && r != Ok(vec![Ok(())]) {
                self.fail(&format!("leave of a stable member got {r:?}"));
            }
            let outputs = self.core.drain();
            self.route(outputs);
        } else if roll < 9 && phase == Phase::Stable {
            // A pause: past the session timeout about half of the time.
            let c = &mut self.clients[i];
            // Short pauses stay within both the session and the
            // rebalance timeout, counting a heartbeat interval and steps.
            let pause = 1_000 + self.rng.below(15_000) as i64;
            c.phase = Phase::Stalled;
            c.resume_ms = now + pause;
            if pause >= 4_000 {
                c.diligent = false;
            }
        } else if roll < 14 {
            self.zombie();
        } else if roll < 18 {
            self.restart();
        } else if roll < 20 {
            // A standalone (assign()-mode) commit.
            let req = CommitRequest {
                group_id: GROUP.into(),
                generation_id: -1,
                member_id: String::new(),
                group_instance_id: None,
                offsets: vec![(
                    (TOPIC.to_string(), 0),
                    OffsetAndMetadata {
                        offset: 5,
                        leader_epoch: -1,
                        metadata: String::new(),
                        commit_timestamp_ms: now,
                    },
                )],
            };
            self.send_commit(None, req, vec![(0, 5)]);
        }
    }

    /// A clean broker restart: every appended record is on disk (commits
    /// not yet acknowledged become visible without an answer), every
    /// connection drops, and a new coordinator replays the log. A Stable
    /// group must come back as it was; any other comes back Empty.
    fn restart(&mut self) {
        let before = self.group().map(|g| {
            let members: BTreeMap<String, Bytes> = g
                .members()
                .map(|m| (m.id.clone(), m.assignment.clone()))
                .collect();
            (g.state, g.generation_id, members)
        });
        for (token, _) in std::mem::take(&mut self.disk) {
            let reply = self.persist_reply.remove(&token).expect("a commit");
            for (p, offset) in self.commits.remove(&reply).unwrap_or_default() {
                self.committed.insert(p, offset);
            }
        }
        self.inflight.clear();
        self.commits.clear();
        self.core = Coordinator::new(self.rng.next());
        for r in &self.log {
            if let Err(e) = self.core.load(self.now, &r.key, r.value.as_deref()) {
                self.fail(&format!("replay: {e}"));
            }
        }
        let after = self.group().map(|g| {
            let members: BTreeMap<String, Bytes> = g
                .members()
                .map(|m| (m.id.clone(), m.assignment.clone()))
                .collect();
            (g.state, g.generation_id, members)
        });
        // The generation neither goes back nor repeats. A Stable group
        // comes back as it was; a rebalancing one as of its last record:
        // Empty, or Stable with the generation's last stored membership
        // (Kafka loads it the same way; members that left since expire).
        let ok = match (&before, &after) {
            (None, None) => true,
            // Nothing was stored yet.
            (Some(b), None) => b.1 == 0 && b.0 != GroupState::Stable,
            (Some(b), Some(a)) if b.0 == GroupState::Stable => b == a,
            (Some(b), Some(a)) => {
                b.1 == a.1
                    && (a.0 == GroupState::Stable || (a.0 == GroupState::Empty && a.2.is_empty()))
            }
            _ => false,
        };
        if !ok {
            self.fail(&format!("restart turned {before:?} into {after:?}"));
        }
        let group = self.core.group(GROUP);
        for c in &mut self.clients {
            c.waiting = None;
            if matches!(c.phase, Phase::Joining | Phase::Syncing | Phase::MustSync) {
                c.phase = Phase::Out;
            }
            // Ids of members a rebalancing group lost, and pending ids,
            // are gone for good: those clients may see UNKNOWN_MEMBER_ID.
            if !c.member_id.is_empty() && !group.is_some_and(|g| g.has_member(&c.member_id)) {
                c.diligent = false;
            }
        }
    }

    fn disk_step(&mut self) {
        while let Some(&(token, due)) = self.disk.front() {
            if due > self.now {
                break;
            }
            self.disk.pop_front();
            self.core.persisted(token, true);
            let outputs = self.core.drain();
            self.route(outputs);
        }
    }

    fn step(&mut self) {
        self.now += self.rng.below(300) as i64;
        self.core.tick(self.now);
        let outputs = self.core.drain();
        self.route(outputs);
        self.disk_step();
        self.chaos();
        let mut order: Vec<usize> = (0..self.clients.len()).collect();
        for k in (1..order.len()).rev() {
            order.swap(k, self.rng.below(k as u64 + 1) as usize);
        }
        for i in order {
            self.act(i);
            let outputs = self.core.drain();
            self.route(outputs);
        }
        self.check();
    }

    fn check(&mut self) {
        let Some(g) = self.group() else { return };
        // A diligent client's id is never lost.
        for c in &self.clients {
            if c.diligent
                && !c.member_id.is_empty()
                && !matches!(c.phase, Phase::Down)
                && !g.has_member(&c.member_id)
                && !g.is_pending_member(&c.member_id)
            {
                self.fail(&format!("{} lost its member id {}", c.name, c.member_id));
            }
        }
        for m in g.members() {
            if g.state == GroupState::Stable
                && (m.awaiting_join.is_some() || m.awaiting_sync.is_some())
            {
                self.fail("a Stable group has a parked request");
            }
        }
        if let Some(leader) = &g.leader_id {
            if !g.has_member(leader) {
                self.fail("the leader is not a member");
            }
        } else if !g.members.is_empty() {
            self.fail("members but no leader");
        }
        if matches!(
            g.state,
            GroupState::Stable | GroupState::CompletingRebalance
        ) {
            // Everyone in this generation was in the leader's list.
            if let Some(list) = self.generation_members.get(&g.generation_id) {
                for m in g.members() {
                    if !self.known_as(&m.id).iter().any(|id| list.contains(id)) {
                        self.fail(&format!(
                            "{} is in generation {} without having joined it",
                            m.id, g.generation_id
                        ));
                    }
                }
            }
        }
        if g.state == GroupState::Stable {
            let mut owned = Vec::new();
            let leader_gave = self.assigned.get(&g.generation_id);
            for m in g.members() {
                let expected = leader_gave
                    .and_then(|a| self.known_as(&m.id).iter().find_map(|id| a.get(id)))
                    .cloned()
                    .unwrap_or_default();
                if m.assignment != expected {
                    self.fail(&format!(
                        "{} holds {:?}, the leader gave {expected:?}",
                        m.id, m.assignment
                    ));
                }
                owned.extend(m.assignment.iter().copied());
            }
            owned.sort_unstable();
            if owned != (0..PARTITIONS).collect::<Vec<_>>() {
                self.fail(&format!("a Stable group owns partitions {owned:?}"));
            }
        }
        // Acknowledged commits are what OffsetFetch returns.
        let fetched = self.core.fetch_offsets(GROUP, None);
        let fetched: BTreeMap<i32, i64> = fetched
            .into_iter()
            .filter_map(|((_, p), om)| Some((p, om?.offset)))
            .collect();
        if fetched != self.committed {
            self.fail(&format!(
                "committed {fetched:?}, acknowledged {:?}",
                self.committed
            ));
        }
    }
}

fn run(seed: u64) {
    let mut rng = Rng(seed);
    let count = 3 + rng.below(4) as usize;
    let clients = (0..count)
        .map(|i| {
            let is_static = rng.chance(30, 100);
            Client {
                name: format!("c{i}"),
                instance: is_static.then(|| format!("instance-{i}")),
                v4: rng.chance(70, 100),
                member_id: String::new(),
                generation: -1,
                leader: false,
                members_for_assign: Vec::new(),
                phase: Phase::Down,
                waiting: None,
                next_heartbeat_ms: 0,
                resume_ms: rng.below(2_000) as i64,
                diligent: true,
                incarnation: 0,
            }
        })
        .collect();
    let mut sim = Sim {
        core: Coordinator::new(rng.next()),
        rng,
        seed,
        now: 0,
        clients,
        inflight: HashMap::new(),
        next_reply: 1,
        disk: VecDeque::new(),
        assigned: BTreeMap::new(),
        generation_members: BTreeMap::new(),
        aliases: HashMap::new(),
        zombies: Vec::new(),
        committed: BTreeMap::new(),
        commits: HashMap::new(),
        highest_generation: 0,
        trace: std::env::var_os("RINGTAIL_GROUP_SIM_TRACE").is_some(),
        log: Vec::new(),
        persist_reply: HashMap::new(),
    };
    for _ in 0..STEPS {
        sim.step();
    }
    // Quiesce: with no more chaos, everyone ends up in one Stable
    // generation within a minute of virtual time.
    for _ in 0..600 {
        if sim.settled() {
            return;
        }
        sim.now += 100;
        sim.core.tick(sim.now);
        let outputs = sim.core.drain();
        sim.route(outputs);
        sim.disk_step();
        for i in 0..sim.clients.len() {
            sim.act(i);
            let outputs = sim.core.drain();
            sim.route(outputs);
        }
        sim.check();
    }
    let g = sim.group().expect("the group exists");
    sim.fail(&format!(
        "did not settle: {:?} with {} members, clients {:?}",
        g.state,
        g.members().count(),
        sim.clients.iter().map(|c| c.phase).collect::<Vec<_>>()
    ));
}

fn env_u64(key: &str) -> Option<u64> {
    std::env::var(key).ok()?.parse().ok()
}

#[test]
fn random_schedules_keep_the_group_invariants() {
    if let Some(seed) = env_u64("RINGTAIL_GROUP_SIM_SEED") {
        run(seed);
        return;
    }
    let count = env_u64("RINGTAIL_GROUP_SIM_SEEDS").unwrap_or(2_000);
    for seed in 0..count {
        run(seed);
    }
}
