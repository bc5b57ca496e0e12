// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "docs/api/", "node_modules/", "coverage/", "bench/zz-*.ts", "test/.doc-samples/"] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ["eslint.config.js", ".dependency-cruiser.js"] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/restrict-template-expressions": ["error", { allowNumber: true }],
      // Public functions validate input from untyped JavaScript and from registries at run time, which this
      // rule reads as dead code; the type system cannot see those callers.
      "@typescript-eslint/no-unnecessary-condition": "off",
      "@typescript-eslint/no-confusing-void-expression": "off",
      "no-restricted-syntax": [
        "error",
        { selector: "CallExpression[callee.property.name='only']", message: "No focused tests." },
        { selector: "CallExpression[callee.property.name='skip']", message: "No skipped tests without a reason; use { skip: 'reason' }." },
      ],
    },
  },
  {
    files: ["test/**/*.ts", "bench/**/*.ts", "examples/**/*.ts"],
    rules: {
      "@typescript-eslint/no-non-null-assertion": "off",
      "@typescript-eslint/no-floating-promises": ["error", { allowForKnownSafeCalls: [{ from: "package", package: "node:test", name: ["describe", "it", "test", "suite"] }] }],
    },
  },
  { files: ["eslint.config.js", ".dependency-cruiser.js"], ...tseslint.configs.disableTypeChecked },
  // The package test's app (test/package/run.ts copies it into a temporary app that installed the
  // tarball): plain JavaScript, outside the TypeScript project, where "proxyless" is the installed package.
  { files: ["test/package/app/**/*.mjs"], ...tseslint.configs.disableTypeChecked },
  { files: ["test/package/app/**/*.mjs"], languageOptions: { globals: { console: "readonly", fetch: "readonly" } } },
);
