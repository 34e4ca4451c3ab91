"""Produce and consume with kafka-python and confluent-kafka (librdkafka) against a broker.

Usage: python_clients.py BOOTSTRAP CLIENT TOPIC COUNT
Prints one JSON line with the client's version and what it verified; exits non-zero on any
mismatch.
"""
import json
import sys
import time

bootstrap, client, topic, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
expected = [(b"key-%d" % i, b"value-%d" % i, [("idx", b"%d" % i)]) for i in range(count)]
base_ts = int(time.time() * 1000) - count


def check(got, version):
    if len(got) != count:
        sys.exit("%s consumed %d records, want %d" % (client, len(got), count))
    for i, (key, value, headers, offset, ts) in enumerate(got):
        want_key, want_value, want_headers = expected[i]
        if (key, value, list(headers)) != (want_key, want_value, want_headers):
            sys.exit("%s record %d: got %r %r %r" % (client, i, key, value, headers))
        if offset != i:
            sys.exit("%s record %d at offset %d" % (client, i, offset))
        if ts != base_ts + i:
            sys.exit("%s record %d timestamp %d, want %d" % (client, i, ts, base_ts + i))
    print(json.dumps({"client": client, "version": version, "produced": count, "consumed": len(got)}))


if client == "kafka-python":
    import kafka
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i, (k, v, h) in enumerate(expected):
        producer.send(topic, key=k, value=v, headers=h, partition=0, timestamp_ms=base_ts + i)
    producer.flush(30)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, consumer_timeout_ms=5000)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    got = [(m.key, m.value, m.headers, m.offset, m.timestamp) for m in consumer]
    consumer.close()
    check(got, kafka.__version__)
elif client == "confluent-kafka":
    import confluent_kafka
    from confluent_kafka import Consumer, Producer, TopicPartition

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "compression.type": "lz4"})
    for i, (k, v, h) in enumerate(expected):
        producer.produce(topic, key=k, value=v, headers=h, partition=0, timestamp=base_ts + i)
    if producer.flush(30) != 0:
        sys.exit("confluent-kafka: records left unsent")
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "compat-assign", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got, deadline = [], time.time() + 30
    while len(got) < count and time.time() < deadline:
        m = consumer.poll(0.5)
        if m is None:
            continue
        if m.error():
            sys.exit("confluent-kafka consume: %s" % m.error())
        got.append((m.key(), m.value(), [(k, v) for k, v in (m.headers() or [])], m.offset(), m.timestamp()[1]))
    consumer.close()
    check(got, "%s (librdkafka %s)" % (confluent_kafka.version()[0], confluent_kafka.libversion()[0]))
else:
    sys.exit("unknown client " + client)
