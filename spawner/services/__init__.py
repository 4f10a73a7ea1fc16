"""Operating a GPU hub: services and hub-side helpers beside the spawner.

- `operations`: `configure_operations(c, data_dir)`, the one call the deployment makes;
- `gpu_reclaim`: when an idle server is warned and stopped (pure), and the loop that does it;
- `fleet`: the GPU table rows from container labels plus live figures (pure);
- `hub_client`: the service's HTTP edge (hub API, the servers' GPU API through the proxy);
- `admin_page`: the GPU admin page (a hub service behind hub OAuth);
- `hub_metrics`: fleet figures, refusals and spawn durations on the hub's `/hub/metrics`;
- `json_logs`: one JSON object per log line.

The service process (`python -m spawner.services`) runs the reclaim loop and the admin page
from one poll of the fleet, so the page answers from memory.
"""
