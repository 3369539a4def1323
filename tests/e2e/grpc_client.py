"""tests/e2e/grpc_client.py: a proxyless gRPC client driven by the e2e tests (run as a subprocess).

gRPC's xDS support reads GRPC_XDS_BOOTSTRAP when the first xds:/// channel is created, so each client runs in
its own process with its own bootstrap. It calls /ekglue.test.Echo/Who on TARGET in a loop and prints one line per
RPC: "<monotonic seconds> <backend id or ERR:code>", flushing each line, until DURATION seconds have passed or
stdin closes. Usage: grpc_client.py TARGET DURATION INTERVAL
"""
import sys
import time

import grpc


def main():
    target, duration, interval = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    channel = grpc.insecure_channel(target)
    who = channel.unary_unary("/ekglue.test.Echo/Who")
    end = time.monotonic() + duration
    while time.monotonic() < end:
        try:
            reply = who(b"", timeout=2.0, wait_for_ready=True)
            print("%.3f %s" % (time.monotonic(), reply.decode()), flush=True)
        except grpc.RpcError as e:
            print("%.3f ERR:%s" % (time.monotonic(), e.code().name), flush=True)
        time.sleep(interval)
    channel.close()


if __name__ == "__main__":
    main()
