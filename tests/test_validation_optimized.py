"""User-facing checks raise ValueError, also under ``python -O`` (which strips every
``assert``): each constructor below is given one bad value in a ``python -O`` process."""
import json
import subprocess
import sys

CASES = {
    "HybridConfig variant": "from hybrid.model import HybridConfig; HybridConfig(variant='huge')",
    "HybridConfig segments": "from hybrid.model import HybridConfig; HybridConfig(segments=0)",
    "STMConfig kernels": "from neuro.stm import STMConfig; STMConfig(kernels=(3, 4, 3))",
    "STMConfig quant": "from neuro.stm import STMConfig; STMConfig(quant='int4')",
    "SynthConfig size": "from hybrid.video.synth import SynthConfig; SynthConfig(size=(16, 16))",
    "EncodeConfig qscale": "from hybrid.video.transcode import EncodeConfig; "
                           "EncodeConfig(qscale=40)",
    "PretrainConfig tasks": "from hybrid.pretraining.pretrain import PretrainConfig; "
                            "PretrainConfig(tasks=('jigsaw',))",
    "BridgeSpec v_scale": "from deploy.artifact.bridge import BridgeSpec; BridgeSpec('mv', "
                          "'x', 'mv', 1, 1, 1, 1, 0.0)",
    "views": "from hybrid.training.views import parse_views; parse_views('8x2')",
}


RUNNER = """
import json, sys
cases, out = json.loads(sys.argv[1]), {}
for name, code in cases.items():
    try:
        exec(code)
        out[name] = "no error"
    except ValueError as e:
        out[name] = "ValueError"
    except BaseException as e:
        out[name] = type(e).__name__ + ": " + str(e)[:200]
print(json.dumps(out))
"""


def test_python_O_strips_asserts_here():
    out = subprocess.run([sys.executable, "-O", "-c", "assert False; print('stripped')"],
                         capture_output=True, text=True)
    assert out.stdout.strip() == "stripped"


def test_bad_values_are_value_errors_under_python_O():
    out = subprocess.run([sys.executable, "-O", "-c", RUNNER, json.dumps(CASES)],
                         capture_output=True, text=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {name: "ValueError" for name in CASES}, out.stderr[-500:]
