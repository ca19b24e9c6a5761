// The HTTP ceiling for the benchmark: a bare Bun.serve that reads the POST body and answers 202 with
// a body like the service's, doing nothing else. Prints its URL, serves until killed.
const server = Bun.serve({
  port: 0,
  hostname: '127.0.0.1',
  async fetch(req) {
    await req.text();
    return Response.json({ statusCode: 202, message: 'Event accepted' }, { status: 202 });
  },
});
console.log(JSON.stringify({ url: `http://127.0.0.1:${server.port}` }));
