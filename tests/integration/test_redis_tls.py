"""``rediss://`` works end to end: broker, store, producer — with certificate checks."""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
import time
from pathlib import Path

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.procs import free_port
from tests.support.sandbox import FAST_KNOBS, SandboxProcess
from tests.support.stack import producer_for, running_stack
from worker.devstack.redis_server import DATABASES, find_redis_server


def _write_pem(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def make_certs(directory: Path) -> dict[str, str]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "headswap test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return {
        "ca": _write_pem(directory / "ca.pem", ca.public_bytes(pem)),
        "cert": _write_pem(directory / "server.pem", cert.public_bytes(pem)),
        "key": _write_pem(directory / "server.key", key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
    }


@pytest.fixture
def tls_redis(tmp_path):
    binary = find_redis_server()
    probe = subprocess.run([binary, "--port", "0", "--tls-port", "1", "--tls-cert-file", "/x"],
                           capture_output=True, text=True, timeout=10)
    if "not supported" in (probe.stdout + probe.stderr).lower() or \
            "FATAL CONFIG" in probe.stdout + probe.stderr:
        pytest.skip(f"{binary} was built without TLS")
    certs = make_certs(tmp_path)
    port = free_port()
    proc = subprocess.Popen([binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                             "--tls-cert-file", certs["cert"], "--tls-key-file", certs["key"],
                             "--tls-ca-cert-file", certs["ca"], "--tls-auth-clients", "no",
                             "--save", "", "--appendonly", "no", "--dir", str(tmp_path),
                             "--databases", str(DATABASES)],  # stacks take a database each
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"rediss://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, ssl_ca_certs=certs["ca"])
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise
            time.sleep(0.05)
    yield url, certs["ca"]
    proc.terminate()
    proc.wait(10)


def test_jobs_run_end_to_end_over_tls(tls_redis):
    url, ca = tls_redis
    with SandboxProcess.start(knobs=FAST_KNOBS) as sb, running_stack(
            url, sb, extra_env={"HEADSWAP_REDIS_CA_FILE": ca}) as st:
        producer = producer_for(st)
        job_id = producer.submit(video_url="https://cdn.example.com/tls.mp4?duration=4",
                                 mappings=[{"obj_id": 0, "img_url": "https://cdn.example.com/f"}],
                                 resolution="720p")
        record = producer.wait(job_id, timeout=30)
        producer.close()
    assert record["state"] == "succeeded"


def test_a_server_certificate_from_another_ca_is_refused(tls_redis, tmp_path):
    url, _ca = tls_redis
    other = make_certs(tmp_path / "other" if (tmp_path / "other").mkdir() is None else tmp_path)
    client = redis.Redis.from_url(url, ssl_ca_certs=other["ca"], ssl_cert_reqs="required")
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        client.ping()
