"""One Parley device over MQTT through Eclipse Paho (paho-mqtt 2.x), for
parley/tests/mqtt.rs. It connects with a persistent session (client id =
the device id, username and password), subscribes to parley/me with QoS 1
and prints each message's payload on a line of its own.

    paho_device.py PORT DEVICE USER PASSWORD COUNT [hold] [v5]

COUNT: messages to wait for before disconnecting cleanly (0: connect,
subscribe, disconnect). `hold`: never acknowledge (manual acks that are
never given), so the test can kill the process before its PUBACK.
"""
import sys
import threading

import paho.mqtt.client as mqtt

port, device, user, password, count = sys.argv[1:6]
count = int(count)
hold = "hold" in sys.argv[6:]
v5 = "v5" in sys.argv[6:]

done = threading.Event()
got = []

if v5:
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv5
    )
else:
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=device,
        clean_session=False,
        protocol=mqtt.MQTTv311,
    )
client.username_pw_set(user, password)
if hold:
    client.manual_ack_set(True)


def on_connect(c, userdata, flags, reason, properties):
    if reason.is_failure:
        print("refused", reason, flush=True)
        done.set()
        return
    c.subscribe("parley/me", qos=1)


def on_subscribe(c, userdata, mid, reasons, properties):
    print("subscribed", flush=True)
    if count == 0:
        done.set()


def on_message(c, userdata, msg):
    print(msg.payload.decode(), flush=True)
    got.append(msg)
    if len(got) >= count and not hold:
        done.set()


client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
if v5:
    from paho.mqtt.properties import Properties
    from paho.mqtt.packettypes import PacketTypes

    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", int(port), keepalive=30, clean_start=False, properties=props)
else:
    client.connect("127.0.0.1", int(port), keepalive=30)
client.loop_start()
if not done.wait(30):
    print("timed out", flush=True)
    sys.exit(1)
client.disconnect()
client.loop_stop()
