"""Admin calls of kafka-python and confluent-kafka (librdkafka) against a broker started with
--broker-config num.partitions=3: manual replica assignment in CreateTopics and
CreatePartitions (accepted when valid, refused with INVALID_REPLICA_ASSIGNMENT otherwise),
and auto-created topics taking the static num.partitions.

Usage: python_admin.py BOOTSTRAP CLIENT PREFIX
Prints one JSON line with what it verified; exits non-zero on any mismatch.
"""
import json
import sys
import time

bootstrap, client, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
assigned, refused, auto = prefix + "-assigned", prefix + "-refused", prefix + "-auto"


def fail(msg):
    sys.exit("%s: %s" % (client, msg))


def wait_partitions(count_of, topic, want):
    deadline = time.time() + 20
    while True:
        got = count_of(topic)
        if got == want:
            return
        if time.time() > deadline:
            fail("%s has %r partitions, want %d" % (topic, got, want))
        time.sleep(0.2)


if client == "kafka-python":
    import kafka
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient, NewPartitions, NewTopic
    from kafka.errors import InvalidReplicationAssignmentError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(assigned, -1, -1, replica_assignments={0: [1], 1: [1]})])
    try:
        admin.create_topics([NewTopic(refused, -1, -1, replica_assignments={0: [1, 1]})])
        fail("a partition with broker 1 twice was accepted")
    except InvalidReplicationAssignmentError:
        pass
    admin.create_partitions({assigned: NewPartitions(3, [[1]])})
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)

    def count_of(topic):
        consumer._client.cluster.request_update()
        consumer._client.poll(timeout_ms=200)
        ps = consumer.partitions_for_topic(topic)
        return len(ps) if ps else None

    wait_partitions(count_of, assigned, 3)
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    producer.send(auto, b"v").get(timeout=30)
    producer.close()
    wait_partitions(count_of, auto, 3)
    version = kafka.__version__
elif client == "confluent-kafka":
    import confluent_kafka
    from confluent_kafka import KafkaError, Producer
    from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    # librdkafka sends num_partitions and replication_factor -1 with an assignment.
    admin.create_topics([NewTopic(assigned, 2, replica_assignment=[[1], [1]])])[assigned].result(30)
    try:
        admin.create_topics([NewTopic(refused, 1, replica_assignment=[[1, 1]])])[refused].result(30)
        fail("a partition with broker 1 twice was accepted")
    except confluent_kafka.KafkaException as e:
        if e.args[0].code() != KafkaError.INVALID_REPLICA_ASSIGNMENT:
            fail("refused with %s, want INVALID_REPLICA_ASSIGNMENT" % e)
    admin.create_partitions([NewPartitions(assigned, 3, replica_assignment=[[1]])])[assigned].result(30)

    def count_of(topic):
        md = admin.list_topics(topic, timeout=10).topics.get(topic)
        return len(md.partitions) if md is not None and md.error is None else None

    wait_partitions(count_of, assigned, 3)
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(auto, b"v")
    if producer.flush(30) != 0:
        fail("produce to %s did not finish" % auto)
    wait_partitions(count_of, auto, 3)
    version = confluent_kafka.version()[0] + "/librdkafka " + confluent_kafka.libversion()[0]
else:
    fail("unknown client")
print(json.dumps({"client": client, "version": version, "manual_assignment": "ok", "auto_created_partitions": 3}))
