// The API reference page (/docs): Swagger UI (from npm, served by the service) over /openapi.json.
// "Try it out" requests carry the key the console keeps in this tab, so they answer as the console does.
import './docs.css';

declare const SwaggerUIBundle: (options: Record<string, unknown>) => unknown;

SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  tryItOutEnabled: false,
  requestInterceptor: (req: { headers: Record<string, string> }) => {
    const key = sessionStorage.getItem('aurore.apiKey');
    if (key) req.headers.Authorization = `Bearer ${key}`;
    return req;
  },
});
