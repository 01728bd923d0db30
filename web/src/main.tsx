// Entry point of the app page (index.html).

import { render } from 'preact';
import { App } from './app.tsx';
import { startLive } from './live.ts';
import './styles.css';
import './hosting.css';

startLive();
const root = document.getElementById('app');
if (root) render(<App />, root);
