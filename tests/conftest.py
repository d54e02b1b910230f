"""Every test process sees 8 simulated CPU devices, so sharding is always exercised."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# 2, not 3: XLA's errors (a collective "may be stuck", a fatal abort's reason) stay visible;
# pyproject's --capture=sys lets them reach the terminal even when a process aborts.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
