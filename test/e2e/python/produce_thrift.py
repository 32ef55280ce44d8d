"""Writes one Snowplow CollectorPayload to a Kafka topic, encoded by
thriftpy2 and produced by kafka-python: neither shares code with furrow.

usage: produce_thrift.py BROKER TOPIC EVENT_ID
"""
import os
import sys
import time
import uuid

import thriftpy2
from thriftpy2.protocol import TBinaryProtocolFactory
from thriftpy2.utils import serialize
from kafka import KafkaProducer

broker, topic, event_id = sys.argv[1:4]
idl = thriftpy2.load(os.path.join(os.path.dirname(__file__), "collector_payload.thrift"), module_name="collector_payload_thrift")
payload = idl.CollectorPayload(
    schema="iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-0",
    ipAddress="198.51.100.7",
    timestamp=int(time.time() * 1000),
    encoding="UTF-8",
    collector="python-test-producer",
    userAgent="python-thrift-test",
    path="/i",
    querystring="e=pv&p=web&tv=py-thrift&aid=python&eid=" + event_id + "&url=https%3A%2F%2Fexample.com%2Fpython",
    headers=["Host: collector.example.com", "User-Agent: python-thrift-test"],
    hostname="collector.example.com",
    networkUserId=str(uuid.uuid4()),
)
value = serialize(payload, TBinaryProtocolFactory())
producer = KafkaProducer(bootstrap_servers=[broker], acks="all")
producer.send(topic, key=str(uuid.uuid4()).encode(), value=value).get(timeout=30)
producer.flush()
producer.close()
print(len(value))
