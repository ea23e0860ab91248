#!/bin/bash
# EMR bootstrap action: installs the Python dependencies of the spark-udfs and stream-consumer packages on every
# node, before EMR starts its applications. The packages themselves are not installed here: each step ships them
# with --py-files (the zips `npm run package` builds and deploy uploads), so a new build needs no new cluster;
# their dependencies (native wheels such as pyarrow) cannot travel in a --py-files zip.
#
# The version bounds are the packages' own (spark-udfs/pyproject.toml, stream-consumer/pyproject.toml); pyspark
# is not installed: EMR's Spark provides it. Extra arguments are more requirement specifiers, e.g. a pin.
#
# Upload it where the EMR instance role may read (EmrJobRole: s3:GetObject on <ArtifactsBucket>/spark/*):
#   aws s3 cp infra/emr/bootstrap/python-dependencies.sh s3://<ArtifactsBucketName>/spark/bootstrap/python-dependencies.sh
# and name it in the cluster file's bootstrapActions (infra/cluster.example.json).
set -euo pipefail

requirements=(
  'requests>=2.31'
  'pyarrow>=14'
  'pandas>=2.2'
  'fastavro>=1.9'
  'jsonschema>=4'
  'boto3>=1.34'
  "$@"
)
# python3 on the node; a cluster whose spark-env classification points PYSPARK_PYTHON elsewhere installs there.
sudo python3 -m pip install --quiet --no-cache-dir "${requirements[@]}"
