"""Produce and consume over SASL_SSL with SCRAM, with kafka-python or confluent-kafka.

Usage: python_secure.py BOOTSTRAP CLIENT MECHANISM CA_FILE USER PASSWORD
Exits non-zero unless the records come back and a wrong password is refused.
"""
import json
import sys

bootstrap, client, mech, ca, user, password = sys.argv[1:7]
topic = "py-secure-" + client + "-" + mech.lower()
values = [b"v-%d" % i for i in range(50)]

if client == "kafka-python":
    import kafka
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.errors import KafkaError

    common = dict(bootstrap_servers=bootstrap, security_protocol="SASL_SSL", sasl_mechanism=mech,
                  sasl_plain_username=user, sasl_plain_password=password, ssl_cafile=ca)
    producer = KafkaProducer(acks="all", **common)
    for v in values:
        producer.send(topic, value=v, partition=0)
    producer.flush(30)
    producer.close()
    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, consumer_timeout_ms=5000, **common)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    got = [m.value for m in consumer]
    consumer.close()
    refused = False
    try:
        bad = dict(common, sasl_plain_password="wrong")
        KafkaProducer(**bad).close()
    except KafkaError:
        refused = True
    version = kafka.__version__
else:
    import confluent_kafka
    from confluent_kafka import Consumer, Producer, TopicPartition, KafkaException

    common = {"bootstrap.servers": bootstrap, "security.protocol": "SASL_SSL", "sasl.mechanisms": mech,
              "sasl.username": user, "sasl.password": password, "ssl.ca.location": ca}
    producer = Producer(dict(common, acks="all"))
    for v in values:
        producer.produce(topic, value=v, partition=0)
    if producer.flush(30) != 0:
        sys.exit("records left unsent")
    consumer = Consumer(dict(common, **{"group.id": "py-secure", "enable.auto.commit": False}))
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = []
    while len(got) < len(values):
        m = consumer.poll(10)
        if m is None:
            break
        if m.error():
            sys.exit("consume: %s" % m.error())
        got.append(m.value())
    consumer.close()
    refused = False
    try:
        bad = Producer(dict(common, **{"sasl.password": "wrong"}))
        bad.list_topics(timeout=5)
    except KafkaException:
        refused = True
    version = confluent_kafka.version()[0]

if got != values:
    sys.exit("%s %s consumed %d of %d records" % (client, mech, len(got), len(values)))
if not refused:
    sys.exit("%s %s: a wrong password was not refused" % (client, mech))
print(json.dumps({"client": client, "version": version, "mechanism": mech, "records": len(got)}))
