/** `npm start`: run the Express server on the configuration from the environment. */
import { errorMessage } from './errors.ts';
import { main } from './server.ts';

main().catch((error: unknown) => {
  // Start-up errors are our own typed errors that name the setting; print the message only.
  process.stderr.write(`cannot start: ${errorMessage(error)}\n`);
  process.exit(1);
});
