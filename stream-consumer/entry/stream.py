"""spark-submit's entry for the streaming job:
`spark-submit --py-files spark_udfs-….zip,stream_consumer-….zip stream.py --config …`.

spark-submit runs the file it is given as a plain script (`__main__`, no parent package), so a module of the
package with relative imports cannot be that file. This one imports the package absolutely, from the zips or
wheels on --py-files (or installed wheels), and hands over to its main.
"""

import sys

from stream_consumer.job import main

if __name__ == "__main__":
    sys.exit(main())
