import 'reflect-metadata';
import { Command, CommanderError } from 'commander';
import { isWalsyncError, messageOf } from '../errors';
import { type Database, openDatabase } from '../postgres/database';
import { type CommandContext, cleanup, create, generate, revert, runPending, show, storeSql } from './commands';
import { defaultDataDir } from './paths';

/**
 * The migration CLI (`yarn migration:*`). Commands that need a database use DATABASE_URL, or
 * start the local Postgres in WALSYNC_DATA_DIR (default .walsync/postgres) and stop it again.
 */
async function main(argv: string[]): Promise<number> {
  let database: Database | undefined;
  const context: CommandContext = {
    print: (line) => console.log(line),
    async databaseUrl() {
      if (!database) {
        database = await openDatabase({ dataDir: defaultDataDir() });
        console.error(`Database: ${database.description}`);
      }
      return database.url;
    },
  };
  const stopOnSignal = (signal: NodeJS.Signals) => {
    void (database?.stop() ?? Promise.resolve()).finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);

  let exitCode = 0;
  const program = new Command('walsync-db')
    .description('walsync schema migrations: TypeORM migrations for the server, extracted SQL for clients')
    .exitOverride()
    .showHelpAfterError()
    .allowExcessArguments(false);
  const action =
    <Args extends unknown[]>(run: (...args: Args) => Promise<number>) =>
    async (...args: Args) => {
      exitCode = await run(...args);
    };
  program
    .command('migration:generate')
    .description('generate a migration with the SQL that brings the schema up to the entities')
    .argument('[name]', 'migration name, e.g. AddDueDate')
    .option('--check', 'only check: exit 1 if the entities differ from the migrations')
    .action(action((name: string | undefined, options: { check?: boolean }) => generate(context, name, options)));
  program
    .command('migration:create')
    .description('create an empty migration to write by hand')
    .argument('[name]', 'migration name')
    .action(action((name: string | undefined) => create(context, name)));
  program.command('migration:run').description('apply pending migrations to the server database').action(action(() => runPending(context)));
  program.command('migration:revert').description("revert the server's latest migration").action(action(() => revert(context)));
  program.command('migration:show').description('list migrations and whether the server applied them').action(action(() => show(context)));
  program
    .command('migration:cleanup')
    .description('remove a migration the server has not applied, with its extracted SQL')
    .argument('[name]', 'migration name')
    .action(action((name: string | undefined) => cleanup(context, name)));
  program
    .command('migration:store-sql')
    .description("store dist/migrations in the server's client_migration catalog")
    .action(action(() => storeSql(context)));

  try {
    await program.parseAsync(argv, { from: 'user' });
    if (argv.length === 0) {
      program.outputHelp();
      exitCode = 2;
    }
  } catch (error) {
    if (error instanceof CommanderError) {
      exitCode = error.exitCode === 0 ? 0 : 2;
    } else {
      console.error(`error: ${isWalsyncError(error) ? error.message : messageOf(error)}`);
      if (!isWalsyncError(error) && process.env.WALSYNC_DEBUG) console.error(error);
      exitCode = 1;
    }
  } finally {
    await database?.stop();
  }
  return exitCode;
}

void main(process.argv.slice(2)).then((code) => process.exit(code));
