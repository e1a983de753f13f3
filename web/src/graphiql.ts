// GraphiQL for developers at /graphiql, bundled from npm like the rest of the app, so it works
// without reaching a CDN. Queries and mutations go over HTTP, subscriptions over graphql-ws.

import 'graphiql/setup-workers/vite';
import 'graphiql/style.css';
import './graphiql.css';
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { GraphiQL } from 'graphiql';
import { createElement } from 'react';
import { createRoot } from 'react-dom/client';
import { ENDPOINT } from './api/graphql';

const DEFAULT_QUERY = `# The national average, from the cheapest tier that has it. The docs (book icon) list
# everything else: submitAllocation, mySubmissions, the aggregatesUpdated subscription.
query {
  aggregates {
    version
    totalSubmissions
    source
  }
}
`;

const url = new URL(ENDPOINT, window.location.href);
const socket = new URL(url);
socket.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';

const root = document.getElementById('graphiql');
if (root) {
  const fetcher = createGraphiQLFetcher({ url: url.toString(), subscriptionUrl: socket.toString() });
  createRoot(root).render(createElement(GraphiQL, { fetcher, defaultQuery: DEFAULT_QUERY }));
}
