"""spark-submit's entry for the table maintenance job: `spark-submit --py-files spark_udfs-….zip maintain.py …`.

spark-submit runs the file it is given as a plain script (`__main__`, no parent package), so a module of the
package with relative imports cannot be that file. This one imports the package absolutely, from the zip or
wheel on --py-files (or an installed wheel), and hands over to its main.
"""

import sys

from spark_udfs.maintenance.job import main

if __name__ == "__main__":
    sys.exit(main())
