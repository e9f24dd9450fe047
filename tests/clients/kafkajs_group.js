// kafkajs 2.x consumer groups against Ringtail (run by tests/groups_kafkajs.rs).
//
// Usage: node kafkajs_group.js BOOTSTRAP first|second
//
// first: creates the 6-partition topic and produces RECORDS single-record
// batches per partition (value `orders|P|I`); three kafkajs consumers
// join one group with subscribe({fromBeginning: true}) and
// run({eachMessage}), autoCommit off so every committed offset is one this
// script chose. Once each partition is owned by exactly one member (two
// each; the members' GROUP_JOIN assignments and the broker's
// DescribeGroups agree), each owner commits `5 + P`. One member
// disconnects; its partitions move to the other two (three each), and
// their new owners start reading them exactly at `5 + P`. The owners then
// commit `10 + P` with metadata, which admin fetchOffsets reads back.
//
// second (after the broker restarted): the commits are still there,
// metadata included; a new consumer in the group gets all six partitions
// and its first message on each is exactly at `10 + P`, then every record
// up to the end, in order, none lost.
//
// Prints OK as its last line when everything held.

'use strict'

function fail(message) {
  process.stdout.write(`FAIL: ${message}\n`)
  process.exit(1)
}

let kafkajs
try {
  kafkajs = require('kafkajs')
} catch (e) {
  process.stderr.write(`FAIL: ${e.message}: run tests/run-all.sh to install kafkajs into tests/clients/node_modules\n`)
  process.exit(2)
}
const { Kafka, Partitioners, logLevel, AssignerProtocol } = kafkajs

const TOPIC = 'orders'
const GROUP = 'g1'
const PARTITIONS = 6
const RECORDS = 30
const TIMEOUT_MS = 40000
const ALL = Array.from({ length: PARTITIONS }, (_, p) => p)

const t0 = Date.now()
function log(message) {
  process.stderr.write(`${((Date.now() - t0) / 1000).toFixed(1)} ${message}\n`)
}

async function waitFor(what, cond) {
  log(`waiting for ${what}`)
  const deadline = Date.now() + TIMEOUT_MS
  for (;;) {
    const got = await cond()
    if (got) return got
    if (Date.now() > deadline) fail(`timed out after ${TIMEOUT_MS} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

function value(p, i) {
  return `${TOPIC}|${p}|${i}`
}

// A consumer in the group that remembers what kafkajs told it
// (GROUP_JOIN) and what it read.
class Member {
  constructor(kafka, name) {
    this.name = name
    this.assignment = null
    this.memberId = null
    this.joins = 0
    // partition -> offsets read, in delivery order.
    this.read = new Map()
    this.error = null
    this.consumer = kafka.consumer({
      groupId: GROUP,
      sessionTimeout: 6000,
      rebalanceTimeout: 10000,
      heartbeatInterval: 300,
      maxWaitTimeInMs: 100,
      retry: { retries: 10, initialRetryTime: 100 },
    })
    const { GROUP_JOIN, CRASH } = this.consumer.events
    this.consumer.on(GROUP_JOIN, e => {
      this.assignment = (e.payload.memberAssignment[TOPIC] || []).slice().sort((a, b) => a - b)
      this.memberId = e.payload.memberId
      this.joins++
      log(`${name} joined as ${e.payload.memberId} (leader ${e.payload.isLeader}): ${JSON.stringify(this.assignment)}`)
    })
    this.consumer.on(CRASH, e => {
      this.error = e.payload.error
      log(`${name} crashed: ${e.payload.error}`)
    })
  }

  async start() {
    await this.consumer.connect()
    await this.consumer.subscribe({ topic: TOPIC, fromBeginning: true })
    await this.consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic, partition, message }) => {
        if (topic !== TOPIC) fail(`${this.name}: message from topic ${topic}`)
        const offset = Number(message.offset)
        const want = value(partition, offset)
        if (message.value.toString() !== want) fail(`${this.name}: ${topic}-${partition}@${offset} is ${message.value}, produced ${want}`)
        if (!this.read.has(partition)) this.read.set(partition, [])
        this.read.get(partition).push(offset)
      },
    })
  }

  // The first offset read on `partition` after the read log was cleared.
  first(partition) {
    const offsets = this.read.get(partition)
    return offsets && offsets.length ? offsets[0] : undefined
  }

  async commit(offsetOf, metadata) {
    const offsets = this.assignment.map(p => ({ topic: TOPIC, partition: p, offset: String(offsetOf(p)), metadata }))
    log(`${this.name} commits ${JSON.stringify(offsets.map(o => [o.partition, o.offset]))}`)
    await this.consumer.commitOffsets(offsets)
  }
}

// The members' own view: partition -> member name when each partition is
// owned by exactly one live member and each has `each`; else null.
function ownedExactlyOnce(members, each) {
  const owner = new Map()
  for (const m of members) {
    if (m.error) fail(`${m.name} crashed: ${m.error}`)
    if (!m.assignment || m.assignment.length !== each) return null
    for (const p of m.assignment) {
      if (owner.has(p)) return null
      owner.set(p, m.name)
    }
  }
  return ALL.every(p => owner.has(p)) ? owner : null
}

// The broker's view (DescribeGroups), as memberId -> sorted partitions,
// when the group is Stable.
async function brokerAssignment(admin) {
  const { groups } = await admin.describeGroups([GROUP])
  const g = groups[0]
  if (g.errorCode !== 0) fail(`describeGroups: error code ${g.errorCode}`)
  if (g.state !== 'Stable') return null
  const out = new Map()
  for (const member of g.members) {
    const decoded = AssignerProtocol.MemberAssignment.decode(member.memberAssignment)
    const parts = ((decoded && decoded.assignment[TOPIC]) || []).slice().sort((a, b) => a - b)
    out.set(member.memberId, parts)
  }
  return out
}

// Waits until the members own every partition exactly once, `each`
// apiece, and the broker's Stable group says the same.
async function waitForOwnership(admin, members, each, what) {
  return waitFor(what, async () => {
    const owner = ownedExactlyOnce(members, each)
    if (!owner) return null
    const broker = await brokerAssignment(admin)
    if (!broker || broker.size !== members.length) return null
    for (const m of members) {
      const b = broker.get(m.memberId)
      if (!b || JSON.stringify(b) !== JSON.stringify(m.assignment)) return null
    }
    return owner
  })
}

// partition -> {offset, metadata} committed for the group.
async function committed(admin) {
  const topics = await admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] })
  const out = new Map()
  for (const { partition, offset, metadata } of topics[0].partitions) out.set(partition, { offset: Number(offset), metadata })
  return out
}

async function checkCommitted(admin, offsetOf, metadataOf, what) {
  const got = await committed(admin)
  for (const p of ALL) {
    const c = got.get(p)
    if (!c || c.offset !== offsetOf(p) || c.metadata !== metadataOf(p)) {
      fail(`${what}: partition ${p} committed ${JSON.stringify(c)}, expected offset ${offsetOf(p)} metadata ${metadataOf(p)}`)
    }
  }
  log(`${what}: committed offsets ${JSON.stringify(ALL.map(p => got.get(p).offset))}`)
}

async function checkEndOffsets(admin) {
  for (const o of await admin.fetchTopicOffsets(TOPIC)) {
    if (Number(o.low) !== 0 || Number(o.high) !== RECORDS) fail(`${TOPIC}-${o.partition}: offsets ${o.low}..${o.high}, produced 0..${RECORDS}`)
  }
}

async function first(kafka, admin) {
  const created = await admin.createTopics({
    waitForLeaders: true,
    timeout: 15000,
    topics: [{ topic: TOPIC, numPartitions: PARTITIONS, replicationFactor: 1 }],
  })
  if (!created) fail(`createTopics: ${TOPIC} already existed`)
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  // One record per partition per request: single-record batches, so a
  // consumer's first message is exactly where it was told to start.
  for (let i = 0; i < RECORDS; i++) {
    await producer.send({
      topic: TOPIC,
      acks: -1,
      messages: ALL.map(p => ({ partition: p, key: `k${p}`, value: value(p, i) })),
    })
  }
  await producer.disconnect()
  await checkEndOffsets(admin)
  log(`produced ${RECORDS} records to each of ${PARTITIONS} partitions`)

  const members = ['a', 'b', 'c'].map(name => new Member(kafka, name))
  await Promise.all(members.map(m => m.start()))
  const owner3 = await waitForOwnership(admin, members, 2, 'three members owning two partitions each')
  console.log(`three members: ${JSON.stringify(ALL.map(p => owner3.get(p)))}`)

  // Nothing is committed yet: every owner reads its partitions from 0.
  await waitFor('each owner reading its partitions', () =>
    members.every(m => m.assignment.every(p => m.first(p) !== undefined))
  )
  for (const m of members) {
    for (const p of m.assignment) {
      if (!m.read.get(p).includes(0)) fail(`${m.name}: partition ${p} read without offset 0 (fromBeginning, nothing committed): ${m.read.get(p)}`)
    }
  }
  for (const m of members) await m.commit(p => 5 + p, null)
  // The broker stores null metadata as "", as Kafka does; kafkajs' admin
  // reports "" as null.
  await checkCommitted(admin, p => 5 + p, () => null, 'first commits')

  // c leaves: its partitions go to a and b, who read them from c's commits.
  const [a, b, c] = members
  const moved = c.assignment.slice()
  for (const m of [a, b]) m.read.clear()
  await c.consumer.disconnect()
  log(`c disconnected; its partitions ${JSON.stringify(moved)}`)
  const owner2 = await waitForOwnership(admin, [a, b], 3, 'two members owning three partitions each')
  console.log(`after c left: ${JSON.stringify(ALL.map(p => owner2.get(p)))}`)
  for (const p of moved) {
    if (!['a', 'b'].includes(owner2.get(p))) fail(`c's partition ${p} is owned by ${owner2.get(p)}`)
  }
  await waitFor('the moved partitions read by their new owners', () =>
    moved.every(p => [a, b].find(m => m.name === owner2.get(p)).first(p) !== undefined)
  )
  for (const p of moved) {
    const m = [a, b].find(m => m.name === owner2.get(p))
    if (m.first(p) !== 5 + p) fail(`${m.name} started partition ${p} (moved from c) at ${m.first(p)}, committed ${5 + p}`)
  }
  console.log(`moved partitions ${JSON.stringify(moved)} resumed at the committed offsets`)

  for (const m of [a, b]) await m.commit(p => 10 + p, `by-${m.name}`)
  await checkCommitted(admin, p => 10 + p, p => `by-${owner2.get(p)}`, 'second commits')
  await Promise.all([a, b].map(m => m.consumer.disconnect()))
  // Each owner's name, for phase two to check the metadata against.
  console.log(`OWNERS ${ALL.map(p => owner2.get(p)).join(',')}`)
}

async function second(kafka, admin, owners) {
  await checkEndOffsets(admin)
  await checkCommitted(admin, p => 10 + p, p => `by-${owners[p]}`, 'after restart')
  const d = new Member(kafka, 'd')
  await d.start()
  await waitForOwnership(admin, [d], PARTITIONS, 'd owning all six partitions')
  await waitFor('d reading every partition to its end', () =>
    ALL.every(p => d.read.has(p) && d.read.get(p)[d.read.get(p).length - 1] === RECORDS - 1)
  )
  for (const p of ALL) {
    const got = d.read.get(p)
    const want = Array.from({ length: RECORDS - (10 + p) }, (_, i) => 10 + p + i)
    if (JSON.stringify(got) !== JSON.stringify(want)) fail(`d read partition ${p} at ${JSON.stringify(got)}, expected ${10 + p}..${RECORDS - 1}`)
  }
  console.log(`d resumed at ${JSON.stringify(ALL.map(p => d.first(p)))} and read every record to the end`)
  await d.commit(() => RECORDS, 'done')
  await checkCommitted(admin, () => RECORDS, () => 'done', 'final commits')
  await d.consumer.disconnect()
}

async function main() {
  const [bootstrap, phase, owners] = process.argv.slice(2)
  if (!bootstrap || !['first', 'second'].includes(phase)) fail('usage: node kafkajs_group.js BOOTSTRAP first|second [OWNERS]')
  console.log(`kafkajs ${require('kafkajs/package.json').version}`)
  const kafka = new Kafka({ clientId: 'ringtail-groups', brokers: [bootstrap], logLevel: logLevel.ERROR })
  const admin = kafka.admin()
  await admin.connect()
  if (phase === 'first') await first(kafka, admin)
  else await second(kafka, admin, (owners || '').split(','))
  await admin.disconnect()
  console.log('OK')
}

main().catch(e => fail(`${e.name}: ${e.message}\n${e.stack}`))
