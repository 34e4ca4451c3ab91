// Produces COUNT records with kafkajs, consumes them back in a consumer group, and checks
// offsets and committed positions through the admin API. Usage: node client.js BOOTSTRAP TOPIC COUNT
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

  const groupId = `${topic}-group`
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 1000 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const seen = new Map()
  const next = new Map()
  let failure = null
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`consumed ${seen.size} of ${count}`)), 60000)
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        const i = Number(message.headers.idx.toString())
        const offset = Number(message.offset)
        if (message.key.toString() !== `key-${i}` || message.value.toString() !== `value-${i}` || i % 3 !== partition) {
          failure = new Error(`record ${i}: ${message.key} ${message.value} in partition ${partition}`)
        }
        if ((next.get(partition) || 0) !== offset) failure = new Error(`partition ${partition}: offset ${offset}, expected ${next.get(partition) || 0}`)
        next.set(partition, offset + 1)
        seen.set(i, true)
        if (seen.size === count || failure) { clearTimeout(timer); resolve() }
      }
    }).catch(reject)
  })
  await consumer.disconnect()
  if (failure) throw failure
  const committed = await admin.fetchOffsets({ groupId, topics: [topic] })
  const committedTotal = committed[0].partitions.reduce((n, p) => n + Number(p.offset), 0)
  if (committedTotal !== count) throw new Error(`committed offsets add up to ${committedTotal}, want ${count}`)
  const groups = await admin.listGroups()
  if (!groups.groups.some(g => g.groupId === groupId)) throw new Error(`group not listed: ${JSON.stringify(groups)}`)
  await admin.deleteTopics({ topics: [topic] })
  await admin.disconnect()
  const version = require('kafkajs/package.json').version
  console.log(JSON.stringify({ client: 'kafkajs', version, produced: count, consumed: count, committed: count }))
}

main().catch(err => { console.error(err); process.exit(1) })
