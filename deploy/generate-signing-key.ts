// Prints a new Ed25519 signing key in Synapse's file format (`ed25519 <version> <seed>`):
//   npx tsx deploy/generate-signing-key.ts > deploy/compose/signing.key
import { formatSigningKeyFile, generateSigningKey } from '@tessera/protocol';

process.stdout.write(formatSigningKeyFile([generateSigningKey()]));
