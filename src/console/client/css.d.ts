// Stylesheets imported for their side effect: Bun's bundler emits them as the page's .css file.
declare module '*.css';
