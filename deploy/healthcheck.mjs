// Container health check without curl in the image: `node deploy/healthcheck.mjs <port> [path]`.
// Exits 0 when http://127.0.0.1:<port><path> answers 200 (path defaults to /health/ready).
const [port, path = '/health/ready'] = process.argv.slice(2);
fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(4000) })
  .then((res) => process.exit(res.status === 200 ? 0 : 1))
  .catch(() => process.exit(1));
