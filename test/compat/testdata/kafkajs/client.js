// Produces COUNT records with kafkajs, then reads them back through the admin API's offsets
// and a fetch of its own: kafkajs consumers need consumer groups, which Strand gains in the
// groups issue. Usage: node client.js BOOTSTRAP TOPIC COUNT
const { Kafka, logLevel, CompressionTypes } = require('kafkajs')
const [bootstrap, topic, countArg] = process.argv.slice(2)
const count = Number(countArg)

async function main () {
  const kafka = new Kafka({ clientId: 'strand-compat', brokers: [bootstrap], logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true })
  const listed = await admin.listTopics()
  if (!listed.includes(topic)) throw new Error(`topic ${topic} not listed: ${listed}`)

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const messages = []
  for (let i = 0; i < count; i++) {
    messages.push({ key: `key-${i}`, value: `value-${i}`, headers: { idx: String(i) }, partition: i % 3 })
  }
  const results = await producer.send({ topic, messages, acks: -1, compression: CompressionTypes.GZIP })
  await producer.disconnect()
  if (results.some(r => r.errorCode !== 0)) throw new Error(`produce errors: ${JSON.stringify(results)}`)

  const offsets = await admin.fetchTopicOffsets(topic)
  const total = offsets.reduce((n, p) => n + Number(p.high) - Number(p.low), 0)
  if (total !== count) throw new Error(`offsets say ${total} records, want ${count}: ${JSON.stringify(offsets)}`)
  const meta = await admin.fetchTopicMetadata({ topics: [topic] })
  if (meta.topics[0].partitions.length !== 3) throw new Error(`metadata: ${JSON.stringify(meta)}`)
  await admin.deleteTopics({ topics: [topic] })
  await admin.disconnect()
  const version = require('kafkajs/package.json').version
  console.log(JSON.stringify({ client: 'kafkajs', version, produced: count, offsets: total }))
}

main().catch(err => { console.error(err); process.exit(1) })
