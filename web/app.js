// Parley web client (placeholder; the full client lands shortly).
const app = document.getElementById('app');
if (app) app.textContent = 'Parley';
