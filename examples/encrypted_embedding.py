"""Encrypt a face, compute its CryptoFaceNet embedding on ciphertexts, decrypt it.

    .venv/bin/python examples/encrypted_embedding.py [--backend tenseal] [--model small] [--face 12]

The client holds the secret key; the server gets only the evaluation context's bytes and
the encrypted patches, and returns the encrypted embedding.
"""

import argparse

import numpy as np

from cryptoface.backend import HEContext
from cryptoface.compile.pipeline import CompileOptions, compile_model
from cryptoface.data import load_orl
from cryptoface.models import load_bundle
from cryptoface.plugins import get_plugins
from cryptoface.runtime.executors import run_program


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="tenseal")
    ap.add_argument("--model", default="small")
    ap.add_argument("--face", type=int, default=0)
    args = ap.parse_args()

    bundle = load_bundle(args.model)
    engine = get_plugins().get(args.backend)
    model = compile_model(bundle.onnx_path, engine, CompileOptions(calibration=bundle.calibration_images()))

    # client
    client = model.create_context(engine)
    image = bundle.preprocess(load_orl()[0][args.face])
    to_server = {name: client.serialize_ciphertext(ct) for name, ct in model.encrypt(client, image).items()}
    eval_keys = client.public().serialize()

    # server: evaluation keys only
    server = HEContext.deserialize_public(eval_keys, engine, mac_key=client.mac_key,
                                          allow_insecure=client.params.insecure_test_params)
    inputs = {name: server.deserialize_ciphertext(b) for name, b in to_server.items()}
    result = run_program(server, model.program, inputs, progress=True)
    reply = server.serialize_ciphertext(result.outputs["embedding"])

    # client
    embedding = model.decode(client.decrypt(client.deserialize_ciphertext(reply)))
    reference = model.reference(image)
    cos = embedding @ reference / (np.linalg.norm(embedding) * np.linalg.norm(reference))
    print(f"{args.backend}: {result.wall_seconds:.1f} s, cosine to the plaintext reference {cos:.7f}")


if __name__ == "__main__":
    main()
