// kafkajs 2.x against Ringtail.
//
// Usage: node kafkajs.js BOOTSTRAP TOPIC_PREFIX produce|verify|read
//
// produce: creates one topic per codec and the edge topic with kafkajs'
// admin client, sends the messages of common.py (same scheme, kept in step
// by hand; codec topics with its ACKS), then reads them back and checks
// them. verify: only reads and
// checks; read: the same for topics another client produced, which may
// lack headers (kcat sends none). All print the digest of what was read.
//
// kafkajs' consumer always reads through a consumer group (that path is
// covered by kafkajs_group.js, run by tests/groups_kafkajs.rs); here
// reading checks exact offsets by assignment instead, so it goes through
// kafkajs' own cluster and broker objects: Metadata to find each
// partition's leader, ListOffsets (admin) for the end offsets, and Fetch
// requests from offset 0, decoded (and decompressed) by kafkajs.
//
// Codecs: gzip is built in; snappy is kafkajs-snappy; lz4 and zstd are
// small adapters over pure-JS lz4js and the zstd WASM build, so nothing
// needs a native compiler.

'use strict'

const crypto = require('crypto')

function fail(message) {
  process.stderr.write(`FAIL: ${message}\n`)
  process.exit(1)
}

let kafkajs, SnappyCodec, lz4, xxh32, zstd
try {
  kafkajs = require('kafkajs')
  SnappyCodec = require('kafkajs-snappy')
  lz4 = require('lz4js')
  xxh32 = require('lz4js/xxh32')
  zstd = require('@bokuweb/zstd-wasm')
} catch (e) {
  process.stderr.write(`FAIL: ${e.message}: run tests/run-all.sh to install kafkajs into tests/clients/node_modules\n`)
  process.exit(2)
}
const { Kafka, CompressionTypes, CompressionCodecs, Partitioners, logLevel } = kafkajs

const PARTITIONS = 3
const KEYED = 150
const UNKEYED = 150
const KEYS = 8
const PAD = 'ringtail-'.repeat(12) + '\u00e9'
const TIMEOUT_MS = 30000
// Producer acks per codec topic (see common.py); others use acks=all.
const ACKS = { none: 0, gzip: 1 }
const EDGE_TIMESTAMP_MS = 1700000000000
const BIG_VALUE_BYTES = 512 * 1024

const CODECS = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
}

// LZ4 frames as Kafka writes them: lz4js writes one block (our batches are
// far below its 4 MiB block size) but leaves the block-independence flag
// clear; set it and redo the header checksum, as Kafka's own LZ4 output has
// independent blocks.
function lz4Compress(buffer) {
  const frame = Buffer.from(lz4.compress(buffer))
  frame[4] |= 0x20
  frame[6] = (xxh32.hash(0, frame, 4, 2) >> 8) & 0xff
  return frame
}

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
CompressionCodecs[CompressionTypes.LZ4] = () => ({
  async compress(encoder) {
    return lz4Compress(encoder.buffer)
  },
  async decompress(buffer) {
    return Buffer.from(lz4.decompress(buffer))
  },
})
CompressionCodecs[CompressionTypes.ZSTD] = () => ({
  async compress(encoder) {
    return Buffer.from(zstd.compress(encoder.buffer, 3))
  },
  async decompress(buffer) {
    return Buffer.from(zstd.decompress(buffer))
  },
})

function topicName(prefix, codec) {
  return `${prefix}-${codec}`
}

function edgeTopic(prefix) {
  return `${prefix}-edge`
}

// Same bytes as common.big_value().
function bigValue() {
  const b = Buffer.alloc(BIG_VALUE_BYTES)
  for (let i = 0; i < BIG_VALUE_BYTES; i++) b[i] = (i * 7919 + (i >> 9) * 31 + (i >> 3)) & 0xff
  return b
}

// {partition, key, value, timestamp} in production order (see common.py).
function edgeExpected(prefix) {
  const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
  const messages = [
    [Buffer.from('tombstone'), null],
    [Buffer.alloc(0), Buffer.alloc(0)],
    [null, Buffer.alloc(0)],
    [all, Buffer.concat([all, all, all, all])],
    [Buffer.from('big'), bigValue()],
    [Buffer.from('after-big'), Buffer.from(`${prefix}|edge|after`)],
  ]
  return messages.map(([key, value], i) => ({
    partition: i % PARTITIONS,
    key,
    value,
    timestamp: EDGE_TIMESTAMP_MS + i * 1000,
  }))
}

function same(a, b) {
  return a === null || b === null ? a === b : Buffer.compare(a, b) === 0
}

function checkEdge(topic, sent, end, consumed) {
  for (let p = 0; p < PARTITIONS; p++) {
    const want = sent.filter(m => m.partition === p)
    const got = consumed[p] || []
    if (end[p] !== want.length) fail(`${topic}-${p}: end offset ${end[p]}, sent ${want.length}`)
    for (let i = 0; i < Math.max(want.length, got.length); i++) {
      const w = want[i]
      const g = got[i]
      const show = m => m && `offset=${m.offset} key=${m.key && m.key.toString('hex').slice(0, 40)} value=${m.value && m.value.toString('hex').slice(0, 40)} (${m.value && m.value.length} bytes) timestamp=${m.timestamp}`
      if (!w || !g || g.offset !== i || !same(g.key, w.key) || !same(g.value, w.value) || g.timestamp !== w.timestamp) {
        fail(`${topic}-${p}: read ${show(g)}, sent ${show(w && { ...w, offset: i })}`)
      }
    }
  }
}

// The messages for one topic, in production order (see common.py).
function expected(prefix, codec) {
  const out = []
  for (let i = 0; i < KEYED; i++) {
    out.push({
      index: i,
      key: Buffer.from(`key-${i % KEYS}`),
      value: Buffer.from(`${prefix}|${codec}|keyed|${String(i).padStart(5, '0')}|${PAD}`),
      headers: { seq: String(i) },
    })
  }
  for (let i = 0; i < UNKEYED; i++) {
    out.push({
      index: KEYED + i,
      key: null,
      value: Buffer.from(`${prefix}|${codec}|unkeyed|${String(i).padStart(5, '0')}|${PAD}`),
      headers: {},
    })
  }
  return out
}

function ident(key, value) {
  return `${key === null ? '-' : key.toString('hex')}|${value.toString('hex')}`
}

function headersText(headers) {
  return Object.keys(headers)
    .sort()
    .map(k => `${k}=${Buffer.from(headers[k]).toString('hex')}`)
    .join(',')
}

function checkTopic(topic, sent, end, consumed, foreign) {
  const total = Object.values(end).reduce((a, b) => a + b, 0)
  if (total !== sent.length) fail(`${topic}: end offsets ${JSON.stringify(end)} add up to ${total}, sent ${sent.length}`)
  const byIdent = new Map(sent.map(m => [ident(m.key, m.value), m]))
  const seen = new Set()
  const keyPartition = new Map()
  for (const p of Object.keys(end).map(Number).sort()) {
    const records = consumed[p]
    records.forEach((r, i) => {
      if (r.offset !== i) fail(`${topic}-${p}: record ${i} has offset ${r.offset}: offsets are not 0..${end[p]}`)
    })
    if (records.length !== end[p]) fail(`${topic}-${p}: read ${records.length} records, end offset ${end[p]}`)
    let last = -1
    for (const r of records) {
      const m = byIdent.get(ident(r.key, r.value))
      if (!m) fail(`${topic}-${p}@${r.offset}: unexpected message key=${r.key} value=${r.value.toString().slice(0, 60)}`)
      const got = headersText(r.headers)
      if (got !== headersText(m.headers) && !(foreign && got === '')) {
        fail(`${topic}-${p}@${r.offset}: headers ${got}, sent ${headersText(m.headers)}`)
      }
      if (seen.has(m.index)) fail(`${topic}-${p}@${r.offset}: message ${m.index} read twice`)
      seen.add(m.index)
      if (m.index <= last) fail(`${topic}-${p}@${r.offset}: message ${m.index} comes after ${last}: per-partition order broken`)
      last = m.index
      if (r.key !== null) {
        const k = r.key.toString('hex')
        if (!keyPartition.has(k)) keyPartition.set(k, p)
        if (keyPartition.get(k) !== p) fail(`${topic}: key ${r.key} is in partitions ${keyPartition.get(k)} and ${p}`)
      }
    }
  }
  const missing = sent.filter(m => !seen.has(m.index)).map(m => m.index)
  if (missing.length) fail(`${topic}: messages never read: ${missing.slice(0, 20)}`)
}

async function produce(kafka, prefix, codec) {
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  const topic = topicName(prefix, codec)
  const messages = expected(prefix, codec)
  // Several messages per request so the codec compresses real batches;
  // one request at a time so production order is the send order.
  const chunk = 25
  for (let i = 0; i < messages.length; i += chunk) {
    await producer.send({
      topic,
      acks: codec in ACKS ? ACKS[codec] : -1,
      compression: CODECS[codec],
      messages: messages.slice(i, i + chunk).map(m => ({ key: m.key, value: m.value, headers: m.headers })),
    })
  }
  await producer.disconnect()
}

async function produceEdge(kafka, prefix) {
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  await producer.send({
    topic: edgeTopic(prefix),
    acks: -1,
    messages: edgeExpected(prefix).map(m => ({ ...m, timestamp: String(m.timestamp) })),
  })
  await producer.disconnect()
}

// Waits until the end offsets add up to `total` (acks=0 producers do not
// wait for the append) or the timeout; returns them.
async function endOffsets(admin, topic, total) {
  const deadline = Date.now() + TIMEOUT_MS
  for (;;) {
    const end = {}
    for (const o of await admin.fetchTopicOffsets(topic)) {
      if (Number(o.low) !== 0) fail(`${topic}-${o.partition}: log start offset ${o.low}, expected 0`)
      end[o.partition] = Number(o.high)
    }
    if (Object.values(end).reduce((a, b) => a + b, 0) >= total || Date.now() > deadline) return end
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

async function consume(kafka, cluster, admin, topic, total) {
  const end = await endOffsets(admin, topic, total)
  if (Object.keys(end).length !== PARTITIONS) fail(`${topic}: ${Object.keys(end).length} partitions, expected ${PARTITIONS}`)
  await cluster.addTargetTopic(topic)
  await cluster.refreshMetadata()
  const leaders = cluster.findTopicPartitionMetadata(topic)
  const consumed = {}
  const deadline = Date.now() + TIMEOUT_MS
  for (const { partitionId, leader } of leaders) {
    const broker = await cluster.findBroker({ nodeId: leader })
    const records = []
    let next = 0
    while (next < end[partitionId]) {
      if (Date.now() > deadline) fail(`${topic}-${partitionId}: read ${next} of ${end[partitionId]} within ${TIMEOUT_MS} ms`)
      const response = await broker.fetch({
        maxWaitTime: 100,
        topics: [{ topic, partitions: [{ partition: partitionId, fetchOffset: String(next), maxBytes: 1 << 20 }] }],
      })
      const part = response.responses[0].partitions[0]
      if (part.errorCode !== 0) fail(`${topic}-${partitionId}: fetch at ${next}: error code ${part.errorCode}`)
      for (const m of part.messages) {
        const offset = Number(m.offset)
        // A fetch inside a batch returns the whole batch.
        if (offset < next) continue
        if (offset !== next) fail(`${topic}-${partitionId}: expected offset ${next}, fetched ${offset}`)
        records.push({ offset, key: m.key, value: m.value, headers: m.headers || {}, timestamp: Number(m.timestamp) })
        next = offset + 1
      }
    }
    consumed[partitionId] = records
  }
  return { end, consumed }
}

async function main() {
  const [bootstrap, prefix, mode] = process.argv.slice(2)
  if (!bootstrap || !prefix || !['produce', 'verify', 'read'].includes(mode)) {
    fail('usage: node kafkajs.js BOOTSTRAP TOPIC_PREFIX produce|verify|read')
  }
  console.log(`kafkajs ${require('kafkajs/package.json').version}`)
  await zstd.init()
  const kafka = new Kafka({ clientId: 'ringtail-tests', brokers: [bootstrap], logLevel: logLevel.ERROR })
  const admin = kafka.admin()
  await admin.connect()
  const codecs = Object.keys(CODECS)
  if (mode === 'produce') {
    const created = await admin.createTopics({
      waitForLeaders: true,
      timeout: 15000,
      topics: codecs
        .map(c => topicName(prefix, c))
        .concat([edgeTopic(prefix)])
        .map(topic => ({ topic, numPartitions: PARTITIONS, replicationFactor: 1 })),
    })
    if (!created) fail('createTopics: topics already existed')
    for (const codec of codecs) await produce(kafka, prefix, codec)
    await produceEdge(kafka, prefix)
  }
  const sym = Object.getOwnPropertySymbols(kafka).find(s => s.description === 'private:Kafka:createCluster')
  if (!sym) fail('kafkajs internals changed: no createCluster on the Kafka object')
  const cluster = kafka[sym]({ allowAutoTopicCreation: false })
  await cluster.connect()
  const digest = crypto.createHash('sha256')
  const addToDigest = (topic, consumed) => {
    for (const p of Object.keys(consumed).map(Number).sort()) {
      for (const r of consumed[p]) {
        const k = r.key === null ? '-' : r.key.toString('hex')
        const v = r.value === null ? '-' : r.value.toString('hex')
        digest.update(`${topic}|${p}|${r.offset}|${k}|${v}\n`)
      }
    }
  }
  for (const codec of codecs) {
    const topic = topicName(prefix, codec)
    const sent = expected(prefix, codec)
    const { end, consumed } = await consume(kafka, cluster, admin, topic, sent.length)
    checkTopic(topic, sent, end, consumed, mode === 'read')
    addToDigest(topic, consumed)
    console.log(`${topic}: ${sent.length} messages in order, end offsets ${JSON.stringify(end)}`)
  }
  if (mode !== 'read') {
    const topic = edgeTopic(prefix)
    const sent = edgeExpected(prefix)
    const { end, consumed } = await consume(kafka, cluster, admin, topic, sent.length)
    checkEdge(topic, sent, end, consumed)
    addToDigest(topic, consumed)
    console.log(`${topic}: ${sent.length} edge messages exact, end offsets ${JSON.stringify(end)}`)
  }
  await cluster.disconnect()
  await admin.disconnect()
  console.log(`DIGEST ${digest.digest('hex')}`)
}

main().catch(e => fail(`${e.name}: ${e.message}\n${e.stack}`))
