"""Two librdkafka consumers with cooperative-sticky: when the second joins, the first gives
up only the partitions that move. Usage: librdkafka_cooperative.py BOOTSTRAP TOPIC GROUP"""
import json
import sys
import time

from confluent_kafka import Consumer

bootstrap, topic, group = sys.argv[1:4]
events = {"a": {"assigned": set(), "revoked": set()}, "b": {"assigned": set(), "revoked": set()}}


def make(name):
    def on_assign(consumer, parts):
        events[name]["assigned"].update(p.partition for p in parts)

    def on_revoke(consumer, parts):
        events[name]["revoked"].update(p.partition for p in parts)

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "partition.assignment.strategy": "cooperative-sticky",
                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    return c


def poll_until(consumers, cond, limit=45):
    deadline = time.time() + limit
    while time.time() < deadline and not cond():
        for c in consumers:
            c.poll(0.1)
    return cond()


a = make("a")
if not poll_until([a], lambda: len(events["a"]["assigned"]) == 6):
    sys.exit("first consumer never got all 6 partitions: %r" % events)
b = make("b")
if not poll_until([a, b], lambda: len(events["b"]["assigned"]) == 3 and len(a.assignment()) == 3):
    sys.exit("partitions were not shared: a=%r b=%r %r" % (a.assignment(), b.assignment(), events))
kept = set(p.partition for p in a.assignment())
moved = set(events["a"]["revoked"])
if moved & kept or len(moved) != 3:
    sys.exit("eager-looking revocation: revoked %r, kept %r" % (sorted(moved), sorted(kept)))
a.close()
b.close()
print(json.dumps({"client": "librdkafka cooperative-sticky", "kept": sorted(kept), "revoked": sorted(moved), "b": sorted(events["b"]["assigned"])}))
