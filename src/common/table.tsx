/**
 * The head row of the panels' tables (class jp-aidevops-table): one header cell per column name.
 */

import * as React from 'react';

export function TableHead(props: { columns: string[] }): React.ReactElement {
  return (
    <thead>
      <tr>
        {props.columns.map((name, i) => (
          <th key={i}>{name}</th>
        ))}
      </tr>
    </thead>
  );
}
