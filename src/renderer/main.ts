import { mount } from 'svelte';
import App from './App.svelte';
import { connectBackend } from './lib/backend';
import { AppState } from './lib/app-state.svelte';
import './global.css';

const target = document.getElementById('app');
if (target === null) throw new Error('index.html has no #app element');

const app = new AppState(connectBackend());
void app.start();

export default mount(App, { target, props: { app } });
