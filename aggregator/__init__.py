"""Central service: MQTT ingest, validation, storage, rollups, heatmaps and health scores."""
