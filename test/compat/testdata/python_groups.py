"""Consume a topic in a consumer group with kafka-python or confluent-kafka, commit, and
report what was read. Usage: python_groups.py BOOTSTRAP CLIENT TOPIC GROUP COUNT"""
import json
import sys
import time

bootstrap, client, topic, group, count = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
values = set()
deadline = time.time() + 60
if client == "kafka-python":
    from kafka import KafkaConsumer

    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                      enable_auto_commit=False, consumer_timeout_ms=30000)
    for m in c:
        values.add(m.value)
        if len(values) == count or time.time() > deadline:
            break
    c.commit()
    c.close()
elif client == "confluent-kafka":
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    while len(values) < count and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            sys.exit("confluent-kafka: %s" % m.error())
        values.add(m.value())
    c.commit(asynchronous=False)
    c.close()
else:
    sys.exit("unknown client " + client)
if len(values) != count:
    sys.exit("%s consumed %d distinct records in group %s, want %d" % (client, len(values), group, count))
print(json.dumps({"client": client, "group": group, "consumed": len(values)}))
