"""librdkafka consumers with the eager range assignor that commit synchronously in their
on_revoke callback, as an at-least-once consumer should, while members join and leave
cleanly and records keep arriving. With eager assignment every join or leave revokes every
member's partitions, and the revoke commits are made while the group is PreparingRebalance.
Each record is processed once it is returned by poll and before the next poll, so a
member's revoke commit covers everything it processed: no record may be processed twice.

Usage: librdkafka_eager_revoke.py BOOTSTRAP TOPIC GROUP RECORDS
Prints one JSON line of figures; exits non-zero when a record is lost or processed twice."""
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

bootstrap, topic, group, records = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
processed = {}  # value -> times processed
figures = {"revoke_commits_ok": 0, "revoke_commits_refused": 0, "loop_commits_refused": 0, "joins": 0, "leaves": 0}
errors = []


def commit(consumer, where):
    try:
        consumer.commit(asynchronous=False)
        return True
    except KafkaException as e:
        if e.args[0].code() == KafkaError._NO_OFFSET:  # nothing consumed since the last commit
            return True
        if len(errors) < 5:
            errors.append("%s commit: %s" % (where, e))
        return False


def on_revoke(consumer, partitions):
    if commit(consumer, "on_revoke"):
        figures["revoke_commits_ok"] += 1
    else:
        figures["revoke_commits_refused"] += 1


def join():
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "partition.assignment.strategy": "range",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    c.subscribe([topic], on_revoke=on_revoke)
    figures["joins"] += 1
    return c


def poll_round(consumers, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        for c in consumers:
            msgs = c.consume(num_messages=200, timeout=0.05)
            for m in msgs:
                if m.error():
                    if len(errors) < 5:
                        errors.append("consume: %s" % m.error())
                    continue
                v = m.value().decode()
                processed[v] = processed.get(v, 0) + 1
            if msgs and not commit(c, "loop"):
                figures["loop_commits_refused"] += 1


producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
produced = 0


def produce(n):
    global produced
    for _ in range(n):
        while True:
            try:
                producer.produce(topic, str(produced).encode())
                break
            except BufferError:
                producer.poll(0.1)
        produced += 1
    if producer.flush(30) != 0:
        sys.exit("producer could not flush")


started = time.time()
members = [join(), join()]
steps = 8
per_step = records // steps
for step in range(steps):
    produce(per_step if step < steps - 1 else records - produced)
    poll_round(members, 1.0)
    # Churn: a member joins, then the oldest leaves cleanly (close: on_revoke commits,
    # then LeaveGroup).
    members.append(join())
    poll_round(members, 1.0)
    oldest = members.pop(0)
    oldest.close()
    figures["leaves"] += 1
deadline = time.time() + 60
while len(processed) < records and time.time() < deadline:
    poll_round(members, 0.5)
for c in members:
    c.close()
    figures["leaves"] += 1

duplicates = sum(n - 1 for n in processed.values() if n > 1)
lost = sum(1 for i in range(records) if str(i) not in processed)
figures.update({"client": "librdkafka range (eager), commit in on_revoke", "records": records,
                "processed": sum(processed.values()), "duplicates": duplicates, "lost": lost,
                "seconds": round(time.time() - started, 1), "errors": errors})
print(json.dumps(figures))
if duplicates or lost:
    sys.exit("%d records processed twice, %d never processed: %r" % (duplicates, lost, figures))
