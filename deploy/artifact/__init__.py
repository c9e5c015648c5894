"""The artifact format: the deployed-model folder (manifest, sha256, versions), the bridge
between the partitions, the input spec, the STM branches it holds, and NIR export."""
